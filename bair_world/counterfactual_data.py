"""What `bair_world.counterfactual` starts from: references with their seeds (`Starts`, `load_starts`)
and the model to drive (`world_model`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bair_world.data.batch import cond_of
from bair_world.data.errors import DataError


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


def _from_root(root: Path, split: str, picks: range | list[int], length: int):
    """(frames, actions, positions, seeds, names, picks, policy) of sequences ``picks`` of a dataset split."""
    from bair_world.data.bair_folder import list_sequences, read_sequence
    from bair_world.data.packed import PackedSplit, is_packed
    from bair_world.data.seeds import recorded_policy, recorded_seeds

    if is_packed(root):
        data = PackedSplit(root, split)
        if data.length < length:
            raise DataError(root / split / "actions.npy", f"sequences have {data.length} steps, expected at least {length}")
        picks = [i for i in picks if i < len(data)]
        arrays = [np.array(a[picks, :length]) for a in (data.frames, data.actions, data.positions)]
        names = [f"{root / split}[{i}]" for i in picks]
    else:
        dirs = list_sequences(root, split)
        picks = [i for i in picks if i < len(dirs)]
        seqs = [read_sequence(dirs[i], length) for i in picks]
        arrays = [np.stack([s[k] for s in seqs]) for k in range(3)]
        names = [str(dirs[i]) for i in picks]
    seeds = recorded_seeds(root, split)
    return (*arrays, None if seeds is None else [seeds[i] for i in picks], names, list(picks), recorded_policy(root))


def _from_seeds(seeds: list[int], picks, length: int):
    from bair_world.sim import DEFAULT_POLICY, generate_sequence

    picks = [i for i in picks if i < len(seeds)]
    seqs = [generate_sequence(seeds[i], length) for i in picks]
    arrays = [np.stack([s[k] for s in seqs]) for k in range(3)]
    return (*arrays, [seeds[i] for i in picks], [f"sim:seed={seeds[i]}" for i in picks], picks, DEFAULT_POLICY)


def _from_source(refs, picks, length: int):
    from bair_world.sim import DEFAULT_POLICY

    picks = [i for i in picks if i < len(refs)]
    got = [refs[i] for i in picks]
    if any(len(r.frames) < length for r in got):
        raise ValueError(f"{refs!r}: references shorter than the {length} frames asked for")
    arrays = [np.stack([getattr(r, k)[:length] for r in got]) for k in ("frames", "actions", "positions")]
    seeds = [refs.seed(i) if hasattr(refs, "seed") else None for i in picks]
    return (*arrays, None if None in seeds else seeds, [r.rollout_id for r in got], picks,
            getattr(refs, "policy", DEFAULT_POLICY))


def load_starts(references, split: str = "test", count: int | None = None, length: int = 30,
                need_seeds: bool = True, only: int | None = None) -> Starts:
    """The first ``count`` references (or just reference ``only``), ``length`` frames each.

    Args:
        references: a dataset root (folder layout or packed; seeds and data policy from its manifest,
            `bair_world.data.seeds.recorded_seeds`, `recorded_policy`), a list of pushing-world seeds
            (scripted sequences), or a reference source (indexable, ``len``, items with
            ``frames``/``actions``/``positions``, and a ``seed(index)`` method and a ``policy`` (default
            scripted) for the true world).
        split: the dataset split (roots only).
        need_seeds: raise unless every reference has a seed.

    Raises:
        ValueError: no references, or no seeds where they are needed; DataError: unreadable data.
    """
    picks = [only] if only is not None else None
    if isinstance(references, (str, Path)):
        root = Path(references)
        total = len(_listing(root, split))
        parts, source = _from_root(root, split, picks or range(min(count or total, total)), length), f"{root} [{split}]"
    elif isinstance(references, (list, tuple, np.ndarray)) and all(isinstance(s, (int, np.integer)) for s in references):
        seeds = [int(s) for s in references]
        parts, source = _from_seeds(seeds, picks or range(min(count or len(seeds), len(seeds))), length), "seeds"
    else:
        n = len(references)
        parts, source = _from_source(references, picks or range(min(count or n, n)), length), repr(references)
    frames, actions, positions, seeds, names, idx, policy = parts
    if only is not None and not idx:
        raise IndexError(f"{source}: index {only} out of range")
    if not idx:
        raise ValueError(f"{source}: no references to start from")
    starts = Starts(np.ascontiguousarray(frames, np.uint8), np.asarray(actions, np.float32),
                    np.asarray(positions, np.float32), seeds, np.asarray(idx), names, source, policy)
    if need_seeds:
        starts.seed(0)  # a clear error now rather than mid-run
    return starts


def _listing(root: Path, split: str):
    from bair_world.data.packed import PackedSplit, is_packed

    if is_packed(root):
        return range(len(PackedSplit(root, split)))
    from bair_world.data.bair_folder import list_sequences

    return list_sequences(root, split)


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
