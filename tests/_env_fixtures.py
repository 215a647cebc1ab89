"""Helpers shared by the env tests: a tiny random-weight checkpoint and in-memory references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bair_world.checkpoint import save_checkpoint
from bair_world.envs.references import Reference, ReferenceSource
from bair_world.models import SVG, preset

# BAIR-like condition statistics: [dx, dy, c2, c3, x, y, z]
COND_MEAN = [0.0, 0.0, 1.0, 1.0, 0.6, -0.05, 0.25]
COND_STD = [0.03, 0.03, 1.0, 1.0, 0.08, 0.1, 0.03]


def make_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """A `tiny`-preset checkpoint with random weights and BAIR-like normalisation."""
    torch.manual_seed(seed)
    model = SVG(preset("tiny"))
    for module in model.modules():  # PyTorch's default init: livelier outputs than SVG's N(0, 0.02),
        if module is not model and hasattr(module, "reset_parameters"):  # so latents change frames
            module.reset_parameters()
    model.set_normalisation(torch.tensor(COND_MEAN), torch.tensor(COND_STD))
    return save_checkpoint(path, model, step=0, epoch=0)


def fake_reference(index: int, length: int = 30) -> Reference:
    """A reproducible rollout: a bright square drifting over noise, BAIR-unit conds."""
    rng = np.random.default_rng(index)
    frames = rng.integers(0, 60, (length, 64, 64, 3), dtype=np.uint8)
    for t in range(length):
        x = (index * 7 + t) % 48
        frames[t, 20:36, x:x + 16] = (200, 120, 40)
    actions = np.zeros((length, 4), np.float32)
    actions[:, :2] = rng.uniform(-0.05, 0.05, (length, 2))
    actions[:, 2:] = rng.integers(0, 3, (length, 2))
    positions = np.column_stack([rng.uniform(0.45, 0.75, length), rng.uniform(-0.25, 0.15, length),
                                 rng.uniform(0.2, 0.3, length)]).astype(np.float32)
    return Reference(frames, actions, positions, index, f"fake:{index}")


class FakeReferences(ReferenceSource):
    """``size`` fake rollouts made on demand."""

    def __init__(self, size: int = 6, length: int = 30):
        super().__init__()
        self.size, self.length = size, length

    def __len__(self) -> int:
        return self.size

    def _load(self, index: int) -> Reference:
        return fake_reference(index, self.length)
