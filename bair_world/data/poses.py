"""The objects' true poses as stored in a dataset: one slot per palette colour, float32 (T, 9, 3).

A sequence from the built-in pushing world may hold ``poses.npz`` (key ``poses``) beside
``labels.npz`` and ``flow.npz``: float32 (T, `POSE_SLOTS`, 3), row ``k`` of step t the pose of the
object whose base colour is palette colour ``k`` (`bair_world.sim.world.PALETTE`; colours are unique
within a scene) as x, y (metres, BAIR's table frame) and angle (radians), NaN for a colour the scene
does not hold. Slots by colour, not by the simulator's object order, because a colour is what a
frame shows: a readout can learn "where is the orange object", not "where is object 2". The arm's
position is the sequence's ``endeffector_positions.csv``. The packed form stores the same array
(`bair_world.data.packed`, kind ``poses``). Data without poses (real BAIR, or written before poses
were recorded) is refused by the readers that need them with a `DataError` naming the missing file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bair_world.data.errors import DataError
from bair_world.data.files import read_npz

POSES_FILE = "poses.npz"
POSE_SLOTS = 9  # len(bair_world.sim.world.PALETTE): a slot per base colour
POSE_STEP_SHAPE = (POSE_SLOTS, 3)  # x, y (metres), angle (radians)
MAX_POSES_BYTES = 16 << 20  # decompressed poses.npz: 108 B a step
POSES_HINT = ("object poses are recorded by the built-in pushing world's writers since issue 30 "
              "(bair-world data synth --out DIR, then pass DIR); real BAIR data has none")


def pose_slots(palette_indices, poses) -> np.ndarray:
    """float32 (POSE_SLOTS, 3): ``poses`` (N, 3) of objects with palette indices (N,) in their slots, NaN elsewhere.

    Raises:
        ValueError: a palette index outside 0..POSE_SLOTS-1 or repeated, or shapes that disagree.
    """
    idx = np.asarray(palette_indices, np.int64).reshape(-1)
    poses = np.asarray(poses, np.float64)
    if poses.shape != (len(idx), 3):
        raise ValueError(f"poses must be ({len(idx)}, 3) for {len(idx)} objects, got {poses.shape}")
    if len(idx) and (idx.min() < 0 or idx.max() >= POSE_SLOTS or len(set(idx.tolist())) != len(idx)):
        raise ValueError(f"palette indices must be distinct in 0..{POSE_SLOTS - 1}, got {idx.tolist()}")
    out = np.full(POSE_STEP_SHAPE, np.nan, np.float32)
    out[idx] = poses
    return out


def check_poses(poses: np.ndarray, length: int, path: Path) -> None:
    """DataError naming ``path`` unless ``poses`` is float32 (T >= length, 9, 3), finite or NaN in whole rows,
    with the same slots present at every step."""
    if poses.dtype != np.float32 or poses.ndim != 3 or poses.shape[1:] != POSE_STEP_SHAPE:
        raise DataError(path, f"poses must be float32 (T, {POSE_SLOTS}, 3), got {poses.dtype} {poses.shape}")
    if len(poses) < length:
        raise DataError(path, f"has {len(poses)} pose steps, expected at least {length}")
    if np.isinf(poses).any():
        raise DataError(path, "poses contain inf")
    missing = np.isnan(poses)
    if len(poses) and ((missing.any(-1) != missing.all(-1)).any() or (missing[:, :, 0] != missing[:1, :, 0]).any()):
        raise DataError(path, "a pose slot is NaN in part or at some steps only (a slot is an object present "
                              "in every frame, or absent: all NaN)")


def read_poses(seq_dir: str | Path, seq_len: int | None = None) -> np.ndarray | None:
    """The sequence's object poses float32 (T, 9, 3) (the first ``seq_len`` steps), or None without ``poses.npz``.

    Raises:
        DataError: naming the file: not a regular file, too large, unreadable, wrong dtype or shape.
    """
    path = Path(seq_dir) / POSES_FILE
    if not os.path.lexists(path):
        return None
    poses = read_npz(path, "poses", "poses file", MAX_POSES_BYTES, 30 * POSE_SLOTS * 3 * 4)
    check_poses(poses, seq_len or len(poses), path)
    return poses if seq_len is None else poses[:seq_len]


def missing_poses(path: Path) -> DataError:
    """The error of a reader that needs poses and finds ``path`` (the sequence's or split's poses file) absent."""
    return DataError(path, f"the data has no object poses ({path.name} is missing): {POSES_HINT}")
