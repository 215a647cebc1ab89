"""Validation during training: PSNR of the seed's protocol and the copy-last-frame baseline."""

from __future__ import annotations

import torch

from bair_world import metrics
from bair_world.models import SVG
from bair_world.world_model import WorldModel


def baseline_psnr(frames: torch.Tensor, n_past: int) -> float:
    """PSNR of the copy-last-frame baseline: x_{n_past-1} repeated for every predicted frame."""
    return float(metrics.psnr(metrics.copy_last_frame(frames, n_past), frames[:, n_past:]).mean())


@torch.no_grad()
def validate(model: SVG, frames: torch.Tensor, conds: torch.Tensor, n_past: int, n_future: int,
             device: torch.device, seed: int, batch_size: int = 64) -> tuple[float, torch.Tensor]:
    """Validation PSNR: n_past context frames, n_future predicted, one prior sample per sequence.

    Args:
        model: the model (left in eval mode; the caller restores train mode).
        frames: (N, n_past + n_future, 3, 64, 64) on CPU.
        conds: (N, n_past + n_future, 7) raw conds.
        n_past, n_future: the protocol.
        device: where to run.
        seed: seed of the latent samples (fixed, so epochs are comparable).
        batch_size: sequences per model call.

    Returns:
        (mean PSNR over predicted frames and sequences, predictions (N, n_future, 3, 64, 64) on CPU).
    """
    world = WorldModel(model, device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    preds = []
    for start in range(0, frames.shape[0], batch_size):
        f = frames[start:start + batch_size].to(device)
        c = conds[start:start + batch_size].to(device)
        preds.append(world.rollout(f, c, n_future, generator).float().cpu())
    pred = torch.cat(preds)  # (N, n_future, 3, 64, 64)
    return float(metrics.psnr(pred, frames[:, n_past:]).mean()), pred
