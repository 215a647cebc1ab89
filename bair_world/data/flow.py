"""The simulator's true per-pixel flow as stored in a dataset: int8 in 1/`FLOW_SCALE` pixel, channels first.

A sequence from the built-in pushing world may hold ``flow.npz`` (key ``flow``) beside ``labels.npz``:
int8 (T, 2, 64, 64), frame t's backward flow from frame t-1 (`bair_world.sim.flow`; frame 0 zeros),
channel 0 x and channel 1 y, in units of 1/8 pixel, so it spans +-15.9 px (the pushing world's
motion stays under ~7 px a step) to within 1/16 px. The packed form stores the same int8 values
(`bair_world.data.packed`, kind ``flow``). Readers get float32 pixels, (T, 2, 64, 64).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from bair_world.data.batch import IMAGE_SIZE
from bair_world.data.errors import DataError
from bair_world.data.files import read_npz

FLOW_FILE = "flow.npz"
FLOW_SCALE = 8  # stored units a pixel
FLOW_STEP_SHAPE = (2, IMAGE_SIZE, IMAGE_SIZE)  # one step as stored: x then y
MAX_FLOW_BYTES = 128 << 20  # decompressed flow.npz: 8,192 B a step, so ~16,000 steps
MOTION_HINT = "motion losses need data from the built-in pushing world (bair-world data synth)"


def quantise_flow(flow: np.ndarray) -> np.ndarray:
    """Flow in pixels, float (..., 64, 64, 2) (x, y last, as `bair_world.sim.rollout` gives it) ->
    the stored int8 (..., 2, 64, 64) in 1/`FLOW_SCALE` pixel, rounded to nearest and clipped to +-127.

    Raises:
        ValueError: another shape, or a NaN or inf.
    """
    flow = np.asarray(flow)
    if flow.ndim < 3 or flow.shape[-3:] != (IMAGE_SIZE, IMAGE_SIZE, 2) or flow.dtype.kind != "f":
        raise ValueError(f"flow must be float (..., {IMAGE_SIZE}, {IMAGE_SIZE}, 2), got {flow.dtype} {flow.shape}")
    if not np.isfinite(flow).all():
        raise ValueError("flow contains NaN or inf")
    stored = np.clip(np.rint(flow * FLOW_SCALE), -127, 127).astype(np.int8)
    return np.ascontiguousarray(np.moveaxis(stored, -1, -3))  # (..., 64, 64, 2) -> (..., 2, 64, 64)


def dequantise_flow(stored: np.ndarray) -> np.ndarray:
    """Stored int8 flow (..., 2, 64, 64) -> float32 pixels (..., 2, 64, 64)."""
    stored = np.asarray(stored)
    if stored.dtype != np.int8:
        raise ValueError(f"stored flow must be int8, got {stored.dtype}")
    return stored.astype(np.float32) / np.float32(FLOW_SCALE)


def flow_pixels(flow: torch.Tensor) -> torch.Tensor:
    """True flow in float32 pixels where it is: the stored int8 (``stored=True`` datasets) / `FLOW_SCALE`
    (`dequantise_flow`'s arithmetic, so the same numbers), float flow as it is."""
    return flow.float() / FLOW_SCALE if flow.dtype == torch.int8 else flow


def check_stored_flow(stored: np.ndarray, length: int, path: Path) -> None:
    """DataError naming ``path`` unless ``stored`` is int8 (T, 2, 64, 64) with at least ``length`` steps."""
    if stored.dtype != np.int8 or stored.ndim != 4 or stored.shape[1:] != FLOW_STEP_SHAPE:
        raise DataError(path, f"flow must be int8 (T, {', '.join(map(str, FLOW_STEP_SHAPE))}), "
                              f"got {stored.dtype} {stored.shape}")
    if len(stored) < length:
        raise DataError(path, f"has {len(stored)} flow steps, expected at least {length}")


def read_stored_flow(seq_dir: str | Path, seq_len: int | None = None) -> np.ndarray | None:
    """The sequence's stored flow, int8 (T, 2, 64, 64) (the first ``seq_len`` steps), or None without
    ``flow.npz``.

    Raises:
        DataError: naming the file: not a regular file, too large, unreadable, wrong dtype or shape,
            fewer than ``seq_len`` steps.
    """
    path = Path(seq_dir) / FLOW_FILE
    if not os.path.lexists(path):
        return None
    stored = read_npz(path, "flow", "flow file", MAX_FLOW_BYTES, 30 * int(np.prod(FLOW_STEP_SHAPE)))
    check_stored_flow(stored, seq_len or len(stored), path)
    return stored if seq_len is None else stored[:seq_len]


def read_flow(seq_dir: str | Path, seq_len: int | None = None) -> np.ndarray | None:
    """The sequence's true flow in pixels, float32 (T, 2, 64, 64) (the first ``seq_len`` steps), or
    None without ``flow.npz``; raises as `read_stored_flow`."""
    stored = read_stored_flow(seq_dir, seq_len)
    return None if stored is None else dequantise_flow(stored)


def missing_targets(path: Path) -> DataError:
    """The error of a dataset asked for targets (labels and flow) whose file ``path`` is absent."""
    return DataError(path, f"the data has no {path.name}: {MOTION_HINT}")
