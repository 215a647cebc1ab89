"""Tiny BAIR-format fixtures made with numpy: sequences, folder datasets and TFRecords in BAIR's exact format."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_sequence(seed: int, length: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random (frames uint8 (T,64,64,3), actions float32 (T,4), positions float32 (T,3)) in BAIR units."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(length, 64, 64, 3), dtype=np.uint8)
    actions = np.zeros((length, 4), dtype=np.float32)
    actions[:, :2] = rng.uniform(-0.07, 0.07, size=(length, 2))
    actions[:, 2:] = rng.integers(0, 3, size=(length, 2))
    positions = np.stack(
        [rng.uniform(0.4, 0.8, length), rng.uniform(-0.3, 0.2, length), rng.uniform(0.2, 0.3, length)], axis=1
    ).astype(np.float32)
    return frames, actions, positions


def write_bair_tfrecord(path: Path, sequences: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    """Write ``sequences`` as one BAIR ``traj_*_to_*.tfrecords`` file (one record per trajectory)."""
    from tfrecord import TFRecordWriter

    writer = TFRecordWriter(str(path))
    for frames, actions, positions in sequences:
        record = {}
        for t in range(len(frames)):
            record[f"{t}/image_aux1/encoded"] = (frames[t].tobytes(), "byte")
            record[f"{t}/image_main/encoded"] = (frames[t][::-1].tobytes(), "byte")  # present in BAIR, unused
            record[f"{t}/action"] = (actions[t].tolist(), "float")
            record[f"{t}/endeffector_pos"] = (positions[t].tolist(), "float")
        writer.write(record)
    writer.close()


def write_folder_dataset(root: Path, counts: dict[str, int]) -> Path:
    """Random sequences in the BAIR folder layout: ``counts`` = {split: sequences}; returns ``root``."""
    from bair_world.data.bair_folder import write_sequence

    for k, (split, n) in enumerate(counts.items()):
        for i in range(n):
            write_sequence(root / split / "traj_0_to_255" / str(i), *make_sequence(100 * k + i))
    return root
