"""Plain helpers shared by the tests (fixtures live in conftest.py): tiny BAIR-format data made with
numpy (sequences, folder datasets, TFRecords in BAIR's exact format), a tiny random-weight checkpoint
and in-memory env references, and importing the repository's scripts (examples/, benchmarks/)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

from bair_world.checkpoint import save_checkpoint
from bair_world.envs.references import Reference, ReferenceSource
from bair_world.models import SVG, model_preset

REPO = Path(__file__).resolve().parent.parent
# BAIR-like condition statistics: [dx, dy, c2, c3, x, y, z]
COND_MEAN = [0.0, 0.0, 1.0, 1.0, 0.6, -0.05, 0.25]
COND_STD = [0.03, 0.03, 1.0, 1.0, 0.08, 0.1, 0.03]


# --- BAIR-format data ---

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


# --- env checkpoints and references ---

def make_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """A `tiny`-preset checkpoint with random weights and BAIR-like normalisation."""
    torch.manual_seed(seed)
    model = SVG(model_preset("tiny"))
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


# --- scripts (examples/, benchmarks/ are not a package) ---

def load_script(folder: str, name: str):
    """Import ``<repo>/<folder>/<name>.py`` as a module (registered as ``<folder>_<name>``)."""
    spec = importlib.util.spec_from_file_location(f"{folder}_{name}", REPO / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
