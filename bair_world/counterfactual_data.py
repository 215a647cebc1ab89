"""What `bair_world.counterfactual` starts from: references with their seeds (`Starts`, `load_starts`,
read through `bair_world.references`) and the model to drive (`world_model`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bair_world.data.batch import cond_of
from bair_world.references import FolderReferences, ReferenceSource, SimReferences


@dataclass
class Starts:
    """N references in memory, with the pushing-world seed of each (None for real data).

    Attributes:
        frames: uint8 (N, T, 64, 64, 3); actions: float32 (N, T, 4); positions: float32 (N, T, 3).
        seeds: pushing-world seeds, or None.
        indices: (N,) index of each reference in its source (seeds the latent samples as evaluation does).
        names: a name per reference for messages.
        source: what they were read from.
        policy: the data policy the references were made with (`bair_world.sim.policy.POLICIES`): with
            the seeds, what rebuilds their true world.
    """

    frames: np.ndarray
    actions: np.ndarray
    positions: np.ndarray
    seeds: list[int] | None
    indices: np.ndarray
    names: list[str]
    source: str
    policy: str

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def conds(self) -> np.ndarray:
        """float32 (N, T, 7) cond_t = concat(action_t, position_t)."""
        return cond_of(self.actions, self.positions)

    def seed(self, row: int) -> int:
        if self.seeds is None:
            raise ValueError(f"{self.source}: no pushing-world seeds (not synthetic data), so the true world "
                             "cannot be started; only action sensitivity works on such data")
        return self.seeds[row]

    def name(self, row: int) -> str:
        return self.names[row]


def reference_source(references, split: str = "test", length: int | None = None) -> ReferenceSource:
    """The `ReferenceSource` behind ``references``: a dataset root (`FolderReferences`), a list of
    pushing-world seeds (`SimReferences`, scripted sequences) or a reference source itself."""
    if isinstance(references, (str, Path)):
        return FolderReferences(references, split, length=length)
    if isinstance(references, (list, tuple, np.ndarray)) and all(isinstance(s, (int, np.integer)) for s in references):
        return SimReferences(seeds=[int(s) for s in references], length=length or 30)
    return references


def load_starts(references, split: str = "test", count: int | None = None, length: int = 30,
                need_seeds: bool = True, only: int | None = None) -> Starts:
    """The first ``count`` references (or just reference ``only``), ``length`` frames each.

    Args:
        references: what `reference_source` takes: a dataset root (folder layout or packed; seeds and
            data policy from its manifest), a list of pushing-world seeds, or a reference source
            (`bair_world.references.ReferenceSource`: its ``seed(index)`` and ``policy`` start the true world).
        split: the dataset split (roots only).
        need_seeds: raise unless every reference has a seed.

    Raises:
        ValueError: no references, or no seeds where they are needed; DataError: unreadable data.
    """
    refs = reference_source(references, split, length)
    if isinstance(references, (str, Path)):
        source = f"{references} [{split}]"
    else:
        source = repr(references) if refs is references else "seeds"
    if only is not None and not 0 <= only < len(refs):
        raise IndexError(f"{source}: index {only} out of range")
    picks = [only] if only is not None else list(range(min(count or len(refs), len(refs))))
    if not picks:
        raise ValueError(f"{source}: no references to start from")
    got = [refs[i] for i in picks]
    if any(len(r) < length for r in got):
        raise ValueError(f"{refs!r}: references shorter than the {length} frames asked for")
    seeds = [refs.seed(i) for i in picks]
    arrays = [np.stack([getattr(r, k)[:length] for r in got]) for k in ("frames", "actions", "positions")]
    starts = Starts(np.ascontiguousarray(arrays[0], np.uint8), np.asarray(arrays[1], np.float32),
                    np.asarray(arrays[2], np.float32), None if None in seeds else seeds, np.asarray(picks),
                    [r.rollout_id for r in got], source, refs.policy)
    if need_seeds:
        starts.seed(0)  # a clear error now rather than mid-run
    return starts


def world_model(model, device: str = "cpu", precision: str = "float32"):
    """(WorldModel, n_past) for a checkpoint directory, an `SVG` or a `WorldModel`."""
    from bair_world.models import SVG
    from bair_world.world_model import WorldModel

    if isinstance(model, WorldModel):
        return model, model.model.cfg.n_past
    if not isinstance(model, SVG):
        from bair_world.checkpoint import load_checkpoint, resolve_checkpoint
        from bair_world.devices import resolve_device

        device = resolve_device(device)
        model, _ = load_checkpoint(resolve_checkpoint(model), device)
    return WorldModel(model.eval(), device, precision), model.cfg.n_past
