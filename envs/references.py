"""Reference rollouts the environments replay against: the built-in pushing world or a BAIR folder.

A reference is one recorded sequence (frames, actions, positions). The env feeds its first
``n_past`` frames to the world model as context, reports the PSNR of every predicted frame against
the recorded one, and hands the recorded next action/position to the agent in ``info``.
"""

from __future__ import annotations

import abc
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bair_world.data.batch import ACTION_DIM, IMAGE_SIZE, POSITION_DIM, cond_of
from bair_world.envs.spaces import check_latent_seed

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
        from bair_world.sim import DEFAULT_POLICY

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
        from bair_world.sim import generate_sequence

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

    Raises:
        bair_world.data.DataError: the split is missing or empty, or a sequence is malformed
            (raised when that sequence is first read).
    """

    def __init__(self, root: str | Path, split: str = "test", cache_size: int = 128):
        super().__init__(cache_size)
        from bair_world.data.bair_folder import list_sequences
        from bair_world.data.packed import PackedSplit, is_packed

        self.root, self.split = Path(root), split
        self._packed = PackedSplit(self.root, split) if is_packed(self.root) else None
        self._dirs = [] if self._packed is not None else list_sequences(self.root, split)  # sorted, the dataset's item order
        self._seeds: list[int] | None | bool = False  # read on first use
        self._policy: str | None = None  # read on first use

    def __len__(self) -> int:
        return len(self._packed) if self._packed is not None else len(self._dirs)

    def seed(self, index: int) -> int | None:
        """Sequence ``index``'s seed as the synthetic generator recorded it (None for other data)."""
        if self._seeds is False:
            from bair_world.data.seeds import recorded_seeds

            self._seeds = recorded_seeds(self.root, self.split)
        return None if self._seeds is None else self._seeds[int(index)]

    @property
    def policy(self) -> str:
        """The data policy the synthetic generator recorded (`bair_world.data.seeds.recorded_policy`)."""
        if self._policy is None:
            from bair_world.data.seeds import recorded_policy

            self._policy = recorded_policy(self.root)
        return self._policy

    def __repr__(self) -> str:
        return f"FolderReferences(root={str(self.root)!r}, split={self.split!r})"

    def _load(self, index: int) -> Reference:
        from bair_world.data.bair_folder import read_sequence

        if self._packed is not None:
            p = self._packed
            return Reference(np.array(p.frames[index]), np.array(p.actions[index]), np.array(p.positions[index]),
                             index, f"{self.root / self.split}[{index}]")
        seq_dir = self._dirs[index]
        frames, actions, positions = read_sequence(seq_dir)
        return Reference(np.ascontiguousarray(frames, dtype=np.uint8), np.asarray(actions, np.float32),
                         np.asarray(positions, np.float32), index, str(seq_dir))


def make_references(data_root: str | Path | None = None, split: str = "test",
                    num_references: int = 10_000) -> ReferenceSource:
    """The built-in pushing world's rollouts (``data_root=None``) or a BAIR folder's split."""
    if data_root is None:
        return SimReferences(size=num_references)
    return FolderReferences(data_root, split)


def check_index(index: Any, count: int) -> int:
    """A reset option ``index`` as an int in [0, count): "3", 1.5 or True are refused, not coerced.

    Raises:
        ValueError: not an int; IndexError: out of range.
    """
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
        raise ValueError(f"reset option 'index' must be an int in [0, {count}), got {index!r}")
    if not 0 <= index < count:
        raise IndexError(f"reset option 'index' {index} is out of range [0, {count})")
    return int(index)


def check_reset_options(options: dict | None, accepted: Sequence[str], env_name: str) -> dict:
    """``options`` (None: {}) if it holds only ``accepted`` names; else ValueError naming the others."""
    options = options or {}
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"unknown reset options {unknown}; {env_name} accepts "
                         + ", ".join(repr(name) for name in accepted))
    return options


def pick_reference(np_random: np.random.Generator, count: int, index: Any = None,
                   latent_seed: Any = None) -> tuple[int, int]:
    """The one rule every env resets by: (reference index, latent torch seed).

    ``index`` None is drawn from ``np_random``, else checked (`check_index`). The torch seed is drawn
    in every world (the true world ignores it) and whatever the options, so the same seed picks the
    same reference everywhere and later resets do not depend on the options; ``latent_seed`` (an
    int) then replaces it.

    Raises:
        ValueError / IndexError: a bad ``index`` or ``latent_seed``.
    """
    index = int(np_random.integers(count)) if index is None else check_index(index, count)
    torch_seed = int(np_random.integers(2**63 - 1))
    if latent_seed is not None:
        torch_seed = check_latent_seed(latent_seed)
    return index, torch_seed


def reset_index(np_random: np.random.Generator, options: dict | None, count: int, env_name: str,
                latent_seed_option: bool = False) -> tuple[int, int]:
    """(reference index, latent torch seed) for a single env's reset: `pick_reference` by its options.

    ``options`` may hold ``"index"`` (and ``"latent_seed"`` where ``latent_seed_option``).

    Raises:
        ValueError: an option the env does not accept, a bad ``index`` or ``latent_seed``.
    """
    accepted = ("index", "latent_seed") if latent_seed_option else ("index",)
    options = check_reset_options(options, accepted, env_name)
    return pick_reference(np_random, count, options.get("index"), options.get("latent_seed"))
