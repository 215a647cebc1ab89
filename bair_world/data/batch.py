"""The one batch type every part of bair-world passes around."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bair_world.shapes import ACTION_DIM, COND_DIM, IMAGE_SIZE, POSITION_DIM  # noqa: F401 (re-exported)


@dataclass
class Batch:
    """A batch of BAIR sequences.

    Attributes:
        frames: (B, T, 3, 64, 64) float in [0, 1], RGB.
        actions: (B, T, 4) float, BAIR units.
        positions: (B, T, 3) float, end-effector position in BAIR units (metres).
        labels: (B, T, 64, 64) uint8 region labels (0 static, 1 arm, 2 objects), or None; present when
            the dataset was opened with ``targets=True``.
        flow: (B, T, 2, 64, 64) float32 true backward flow of frame t from frame t-1 in pixels (x, y;
            frame 0 zeros: `bair_world.data.flow`), or None; present with ``targets=True``.
    """

    frames: torch.Tensor
    actions: torch.Tensor
    positions: torch.Tensor
    labels: torch.Tensor | None = None
    flow: torch.Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        return self._map(lambda x: x.to(device, non_blocking=non_blocking))

    @property
    def cond(self) -> torch.Tensor:
        """(B, T, 7) condition: concat(action_t, position_t), raw BAIR units."""
        return cond_of(self.actions, self.positions)

    def __len__(self) -> int:
        return self.frames.shape[0]

    def pin_memory(self) -> "Batch":
        return self._map(torch.Tensor.pin_memory)

    def _map(self, fn) -> "Batch":
        """A Batch of ``fn(tensor)`` for every tensor (None stays None)."""
        return Batch(fn(self.frames), fn(self.actions), fn(self.positions),
                     None if self.labels is None else fn(self.labels), None if self.flow is None else fn(self.flow))


def cond_of(actions, positions, dtype=np.float32):
    """The model's condition cond_t = concat(action_t, position_t): (..., 4) + (..., 3) -> (..., 7).

    Torch in, torch out (the positions cast to the actions' dtype); numpy (or lists) in, a numpy
    array of ``dtype`` out.
    """
    if isinstance(actions, torch.Tensor):
        return torch.cat([actions, positions.to(actions.dtype)], dim=-1)
    return np.concatenate([np.asarray(actions, dtype), np.asarray(positions, dtype)], axis=-1)


def collate(items: list[dict[str, torch.Tensor]]) -> Batch:
    """Stack dataset items ({"frames": (T,3,64,64), "actions": (T,4), "positions": (T,3)}, with a
    dataset's ``targets=True`` also "labels": (T,64,64) and "flow": (T,2,64,64)) into a Batch."""
    targets = {key: torch.stack([it[key] for it in items]) for key in ("labels", "flow") if key in items[0]}
    return Batch(
        frames=torch.stack([it["frames"] for it in items]),
        actions=torch.stack([it["actions"] for it in items]),
        positions=torch.stack([it["positions"] for it in items]),
        **targets,
    )


def frames_to_float(frames: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 numpy (files, references, observations) -> (..., 3, H, W) float tensor in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).movedim(-1, -3).float().div_(255.0)  # (..., H, W, 3) -> (..., 3, H, W)


def stored_frames(frames: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 numpy -> a fresh (..., 3, H, W) uint8 tensor: frames as a dataset opened with
    ``stored=True`` gives them, converted to float by `unit_frames` after cropping, on the device."""
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(frames, -1, -3)))  # (..., H, W, 3) -> (..., 3, H, W)


def unit_frames(frames: torch.Tensor) -> torch.Tensor:
    """Frames as float in [0, 1] where they are: uint8 (`stored_frames`) / 255 (the arithmetic of
    `frames_to_float`, so the same numbers), float frames as they are."""
    return frames.float().div_(255.0) if frames.dtype == torch.uint8 else frames


def frames_to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) float in [0, 1] -> (..., H, W, 3) uint8 numpy (the envs' observation layout)."""
    x = frames.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
    return x.movedim(-3, -1).numpy()  # (..., 3, H, W) -> (..., H, W, 3)
