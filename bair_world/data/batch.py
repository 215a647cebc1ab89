"""The one batch type every part of bair-world passes around."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

ACTION_DIM = 4
POSITION_DIM = 3
COND_DIM = ACTION_DIM + POSITION_DIM
IMAGE_SIZE = 64


@dataclass
class Batch:
    """A batch of BAIR sequences.

    Attributes:
        frames: (B, T, 3, 64, 64) float in [0, 1], RGB.
        actions: (B, T, 4) float, BAIR units.
        positions: (B, T, 3) float, end-effector position in BAIR units (metres).
    """

    frames: torch.Tensor
    actions: torch.Tensor
    positions: torch.Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        return Batch(
            self.frames.to(device, non_blocking=non_blocking),
            self.actions.to(device, non_blocking=non_blocking),
            self.positions.to(device, non_blocking=non_blocking),
        )

    @property
    def cond(self) -> torch.Tensor:
        """(B, T, 7) condition: concat(action_t, position_t), raw BAIR units."""
        return cond_of(self.actions, self.positions)

    def __len__(self) -> int:
        return self.frames.shape[0]

    def pin_memory(self) -> "Batch":
        return Batch(self.frames.pin_memory(), self.actions.pin_memory(), self.positions.pin_memory())


def cond_of(actions, positions, dtype=np.float32):
    """The model's condition cond_t = concat(action_t, position_t): (..., 4) + (..., 3) -> (..., 7).

    Torch in, torch out (the positions cast to the actions' dtype); numpy (or lists) in, a numpy
    array of ``dtype`` out.
    """
    if isinstance(actions, torch.Tensor):
        return torch.cat([actions, positions.to(actions.dtype)], dim=-1)
    return np.concatenate([np.asarray(actions, dtype), np.asarray(positions, dtype)], axis=-1)


def collate(items: list[dict[str, torch.Tensor]]) -> Batch:
    """Stack dataset items ({"frames": (T,3,64,64), "actions": (T,4), "positions": (T,3)}) into a Batch."""
    return Batch(
        frames=torch.stack([it["frames"] for it in items]),
        actions=torch.stack([it["actions"] for it in items]),
        positions=torch.stack([it["positions"] for it in items]),
    )


def frames_to_float(frames: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 numpy (files, references, observations) -> (..., 3, H, W) float tensor in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).movedim(-1, -3).float().div_(255.0)  # (..., H, W, 3) -> (..., 3, H, W)


def frames_to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) float in [0, 1] -> (..., H, W, 3) uint8 numpy (the envs' observation layout)."""
    x = frames.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
    return x.movedim(-3, -1).numpy()  # (..., 3, H, W) -> (..., H, W, 3)
