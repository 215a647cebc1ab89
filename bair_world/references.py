"""Reference rollouts: recorded sequences with the pushing-world seed each was made from, read from the
built-in world (`SimReferences`), a BAIR folder or a packed dataset (`FolderReferences`).

The one definition of "a reference with its seed": the environments replay them (`bair_world.envs`),
the counterfactual evaluation starts the true world from them (`bair_world.counterfactual_data`), and
``evaluate --actions`` reads its starts through the same. A reference is one recorded sequence
(frames, actions, positions); an env feeds its first ``n_past`` frames to the world model as context,
reports the PSNR of every predicted frame against the recorded one and hands the recorded next
action/position to the agent in ``info``; ``seed(index)`` and ``policy`` rebuild its true world
(`bair_world.sim.start_world`).
"""

from __future__ import annotations

import abc
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from bair_world.data.bair_folder import list_sequences, read_sequence
from bair_world.data.batch import ACTION_DIM, IMAGE_SIZE, POSITION_DIM, cond_of
from bair_world.data.errors import DataError
from bair_world.data.packed import PackedSplit, check_finite_conds, is_packed
from bair_world.data.seeds import recorded_policy, recorded_seeds
from bair_world.sim import DEFAULT_POLICY, generate_sequence

#: Seeds of the built-in references start here, far from the small seeds a synthetic training set
#: uses, so the default env replays rollouts the bundled model has not been trained on.
SIM_SEED_OFFSET = 1_000_000_000


@dataclass(frozen=True)
class Reference:
    """One recorded rollout.

    Attributes:
        frames: (T, 64, 64, 3) uint8 RGB.
        actions: (T, 4) float32, BAIR units.
        positions: (T, 3) float32, end-effector positions in BAIR units.
        index: index of the rollout in its source.
        rollout_id: a stable, human-readable name ("sim:seed=<n>" or the sequence folder).
    """

    frames: np.ndarray
    actions: np.ndarray
    positions: np.ndarray
    index: int
    rollout_id: str

    def __post_init__(self):
        t = self.frames.shape[0]
        problems = []
        if self.frames.dtype != np.uint8 or self.frames.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
            problems.append(f"frames must be uint8 (T, 64, 64, 3), got {self.frames.dtype} {self.frames.shape}")
        if self.actions.shape != (t, ACTION_DIM):
            problems.append(f"actions must be ({t}, {ACTION_DIM}), got {self.actions.shape}")
        if self.positions.shape != (t, POSITION_DIM):
            problems.append(f"positions must be ({t}, {POSITION_DIM}), got {self.positions.shape}")
        if problems:
            raise ValueError(f"reference {self.rollout_id}: " + "; ".join(problems))
        for array in (self.frames, self.actions, self.positions):
            array.setflags(write=False)  # shared by every env that replays it

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def conds(self) -> np.ndarray:
        """(T, 7) float32 cond_t = concat(action_t, position_t)."""
        return cond_of(self.actions, self.positions)

    def check_steps(self, n_past: int) -> None:
        """ValueError unless the reference has a frame to step to after its ``n_past`` context frames."""
        if len(self) <= n_past:
            raise ValueError(f"reference {self.rollout_id} has {len(self)} frames; n_past={n_past} "
                             f"leaves nothing to predict")


class ReferenceSource(abc.ABC):
    """An indexable, finite collection of references with a small LRU cache."""

    def __init__(self, cache_size: int = 128):
        self._cache: OrderedDict[int, Reference] = OrderedDict()
        self._cache_size = cache_size

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of references."""

    @abc.abstractmethod
    def _load(self, index: int) -> Reference:
        """Build reference ``index`` (0 <= index < len); `__getitem__` checks and caches."""

    def seed(self, index: int) -> int | None:
        """The pushing world's seed of reference ``index`` (what `bair_world.sim.start_world` rebuilds
        it from), or None when the source does not know one (real BAIR data)."""
        return None

    @property
    def policy(self) -> str:
        """The data policy the references were made with (`bair_world.sim.policy.POLICIES`): with `seed`,
        what `bair_world.sim.start_world` replays; the built-in world's references are scripted."""
        return DEFAULT_POLICY

    def __getitem__(self, index: int) -> Reference:
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"a reference index must be an int, got {type(index).__name__}")
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"reference index {index} is out of range: {self!r} holds {len(self)} rollouts")
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        ref = self._load(index)
        self._cache[index] = ref
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return ref


class SimReferences(ReferenceSource):
    """Rollouts generated on demand by the built-in pushing world: index i is seed offset + i, or
    ``seeds[i]`` when explicit seeds are given.

    Args:
        size: how many distinct rollouts reset() picks from (ignored with ``seeds``: their count).
        length: frames per rollout (30, as BAIR).
        seed_offset: seed of rollout 0.
        cache_size: rollouts kept in memory.
        seeds: explicit sequence seeds, e.g. a dataset split's
            (`bair_world.data.synthetic.recorded_seeds`): then reference i equals that split's sequence i.
    """

    def __init__(self, size: int = 10_000, length: int = 30, seed_offset: int = SIM_SEED_OFFSET,
                 cache_size: int = 128, seeds: Sequence[int] | None = None):
        super().__init__(cache_size)
        self.seeds = None if seeds is None else [int(s) for s in seeds]
        size = len(self.seeds) if self.seeds is not None else size
        if size < 1 or length < 2:
            raise ValueError(f"SimReferences needs size >= 1 and length >= 2, got size={size}, length={length}")
        self.size, self.length, self.seed_offset = int(size), int(length), int(seed_offset)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        if self.seeds is not None:
            return f"SimReferences(seeds=<{self.size} explicit>, length={self.length})"
        return f"SimReferences(size={self.size}, length={self.length}, seed_offset={self.seed_offset})"

    def seed(self, index: int) -> int:
        return self.seeds[index] if self.seeds is not None else self.seed_offset + int(index)

    def _load(self, index: int) -> Reference:
        seed = self.seed(index)
        frames, actions, positions = generate_sequence(seed, length=self.length)
        return Reference(np.ascontiguousarray(frames, dtype=np.uint8), np.asarray(actions, np.float32),
                         np.asarray(positions, np.float32), index, f"sim:seed={seed}")


class FolderReferences(ReferenceSource):
    """Sequences of a BAIR folder split (``<root>/<split>/<trajectory>/<sequence>/``), sorted, or of a
    packed dataset's split (`bair_world.data.packed`, same order).

    Args:
        root: dataset root holding ``<split>/``.
        split: "train", "validate" or "test".
        cache_size: rollouts kept in memory.
        length: frames read per reference (its first ones); None: BAIR's 30 from folders, all from packs.

    Raises:
        bair_world.data.DataError: the split is missing or empty, or a sequence is malformed
            (raised when that sequence is first read).
    """

    def __init__(self, root: str | Path, split: str = "test", cache_size: int = 128, length: int | None = None):
        super().__init__(cache_size)
        self.root, self.split, self.length = Path(root), split, length
        self._packed = PackedSplit(self.root, split) if is_packed(self.root) else None
        if self._packed is not None:
            check_finite_conds(self._packed, self.root / split)
        self._dirs = [] if self._packed is not None else list_sequences(self.root, split)  # sorted, the dataset's item order
        self._seeds: list[int] | None | bool = False  # read on first use
        self._policy: str | None = None  # read on first use

    def __len__(self) -> int:
        return len(self._packed) if self._packed is not None else len(self._dirs)

    def seed(self, index: int) -> int | None:
        """Sequence ``index``'s seed as the synthetic generator recorded it (None for other data)."""
        if self._seeds is False:
            self._seeds = recorded_seeds(self.root, self.split)
        return None if self._seeds is None else self._seeds[int(index)]

    @property
    def policy(self) -> str:
        """The data policy the synthetic generator recorded (`bair_world.data.seeds.recorded_policy`)."""
        if self._policy is None:
            self._policy = recorded_policy(self.root)
        return self._policy

    def __repr__(self) -> str:
        return f"FolderReferences(root={str(self.root)!r}, split={self.split!r})"

    def _load(self, index: int) -> Reference:
        if self._packed is not None:
            p, end = self._packed, self.length
            if end is not None and p.length < end:
                raise DataError(self.root / self.split / "actions.npy",
                                f"sequences have {p.length} steps, expected at least {end}")
            return Reference(np.array(p.frames[index, :end]), np.array(p.actions[index, :end]),
                             np.array(p.positions[index, :end]), index, f"{self.root / self.split}[{index}]")
        seq_dir = self._dirs[index]
        frames, actions, positions = read_sequence(seq_dir, *(() if self.length is None else (self.length,)))
        return Reference(np.ascontiguousarray(frames, dtype=np.uint8), np.asarray(actions, np.float32),
                         np.asarray(positions, np.float32), index, str(seq_dir))


def make_references(data_root: str | Path | None = None, split: str = "test",
                    num_references: int = 10_000) -> ReferenceSource:
    """The built-in pushing world's rollouts (``data_root=None``) or a BAIR folder's split."""
    if data_root is None:
        return SimReferences(size=num_references)
    return FolderReferences(data_root, split)
