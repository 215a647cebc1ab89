"""Motion statistics of generated sequences: do objects get pushed, how much do frames change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

MOVED_PX = 2.0  # an object "moved" if its centre travelled more than this many 64x64 pixels


def sequence_motion(frames: np.ndarray, object_pixels: np.ndarray) -> tuple[float, float]:
    """Per-sequence motion summary.

    Args:
        frames: uint8 (T, H, W, 3).
        object_pixels: (T, N, 2) object centres in pixels of the same frames.

    Returns:
        (largest object displacement from its start in pixels, mean |frame_{t+1} - frame_t| in 0..255).
    """
    if len(frames) < 2:
        return 0.0, 0.0
    disp = np.linalg.norm(object_pixels - object_pixels[:1], axis=-1)  # (T, N)
    change = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean()
    return float(disp.max(initial=0.0)), float(change)


@dataclass
class MotionStats:
    """Motion summary over many sequences.

    Attributes:
        sequences: how many sequences were summarised.
        moved_fraction: share of sequences in which some object moved more than MOVED_PX pixels.
        mean_frame_change: mean absolute per-frame pixel change (0..255 scale).
        mean_max_displacement: mean over sequences of the largest object displacement (pixels).
    """

    sequences: int
    moved_fraction: float
    mean_frame_change: float
    mean_max_displacement: float

    def __str__(self) -> str:
        return (f"{self.sequences} sequences: objects moved > {MOVED_PX:g} px in {100 * self.moved_fraction:.1f}%, "
                f"mean object displacement {self.mean_max_displacement:.2f} px, "
                f"mean per-frame pixel change {self.mean_frame_change:.2f}/255")


def motion_stats(per_sequence: Iterable[tuple[float, float]]) -> MotionStats:
    """Aggregate `sequence_motion` results (max displacement px, mean frame change) of many sequences."""
    arr = np.array(list(per_sequence), dtype=float).reshape(-1, 2)  # (S, 2)
    if len(arr) == 0:
        return MotionStats(0, 0.0, 0.0, 0.0)
    return MotionStats(len(arr), float((arr[:, 0] > MOVED_PX).mean()), float(arr[:, 1].mean()), float(arr[:, 0].mean()))
