"""One optimiser step and its guards: per-epoch RNG seeding, mixed precision, the divergence check."""

from __future__ import annotations

import contextlib
import math
import random

import numpy as np
import torch

from bair_world.training import distributed as D
from bair_world.training.config import TrainConfig


class TrainingDiverged(RuntimeError):
    """The loss or gradient became NaN/inf; the run stopped and its last good checkpoint is kept."""


def seed_everything(seed: int, rank: int, epoch: int) -> random.Random:
    """Seed torch, numpy and python RNGs from (seed, rank, epoch); returns the python RNG the loop
    draws teacher-forcing decisions from. Seeding per epoch makes a resumed run exact at epoch
    granularity on every rank, without gathering each rank's RNG state."""
    mixed = (seed * 1_000_003 + rank * 10_007 + epoch) % (2**63)
    torch.manual_seed(mixed)
    np.random.seed(mixed % (2**32))
    random.seed(mixed)
    return random.Random(mixed)


def autocast(cfg: TrainConfig, device: torch.device):
    """The forward pass's mixed-precision context: bf16 anywhere, fp16 on CUDA only, else none."""
    if cfg.amp == "none" or (device.type != "cuda" and cfg.amp == "fp16"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if cfg.amp == "bf16" else torch.float16)


def check_loss(loss: torch.Tensor, where: str, info: D.DistInfo, device: torch.device) -> float:
    """The loss as a float; raises `TrainingDiverged` on every rank if it is NaN/inf on any.

    Args:
        where: the step and epoch, for the message (e.g. ``"step 3 (epoch 2); ... in runs/x/last"``).
    """
    value = float(loss.detach())
    if D.any_flag(not math.isfinite(value), info, device):
        raise TrainingDiverged(f"non-finite loss ({value}) at {where}")
    return value


def optimizer_step(loss: torch.Tensor, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler, grad_clip: float | None, where: str) -> None:
    """Backward, clip the gradient norm (``grad_clip``; none = no clipping), step, zero the gradients.

    Raises:
        TrainingDiverged: the gradient norm is NaN/inf (without fp16 loss scaling, whose scaler skips
            such steps itself).
    """
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip or math.inf)
    if not scaler.is_enabled() and not torch.isfinite(norm):
        raise TrainingDiverged(f"non-finite gradient norm at {where}")
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
