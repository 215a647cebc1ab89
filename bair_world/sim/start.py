"""Start the true pushing world where a recorded synthetic sequence is: rebuild it from its seed and
replay its policy's actions, checking every replayed frame against the recording byte for byte."""

from __future__ import annotations

import copy

import numpy as np

from bair_world.sim.config import SimConfig
from bair_world.sim.policy import DEFAULT_POLICY
from bair_world.sim.world import PushWorld, sequence_worlds


def replay_world(seed: int, frames: np.ndarray, n_past: int, config: SimConfig = SimConfig(),
                 to_end: bool = False, name: str = "reference",
                 policy: str = DEFAULT_POLICY) -> tuple[PushWorld, PushWorld | None]:
    """The world of sequence ``seed`` at frame ``n_past - 1`` (and, with ``to_end``, at its last frame).

    The replay re-runs the sequence in float64 (`sequence_worlds`), so the world is in exactly the
    recorded state, not one a float32 replay of the stored actions would drift to.

    Args:
        seed: the sequence's seed (`bair_world.data.synthetic.sequence_seed` for dataset sequences).
        frames: uint8 (T, 64, 64, 3) the recorded frames; the first ``n_past`` (all with ``to_end``)
            are checked.
        n_past: context frames: the returned world shows frame ``n_past - 1``.
        config: the world's configuration (the one the sequence was made with).
        to_end: also replay to the last recorded frame and return that world too.
        name: how errors name the sequence.
        policy: the data policy the sequence's dataset was made with (`bair_world.sim.policy.POLICIES`;
            a dataset records it: `bair_world.data.seeds.recorded_policy`).

    Returns:
        (world at frame n_past - 1, world at frame T - 1 or None).

    Raises:
        ValueError: fewer than ``n_past`` frames, or an unknown policy.
        RuntimeError: a replayed frame differs from the recorded one (another seed, policy, generator
            version or SimConfig).
    """
    frames = np.asarray(frames)
    if not 1 <= n_past <= len(frames):
        raise ValueError(f"{name}: n_past must be in [1, {len(frames)}], got {n_past}")
    stop = len(frames) if to_end else n_past
    start = world = None
    for t, world, _ in sequence_worlds(int(seed), stop, config, policy):
        if not np.array_equal(world.frame, frames[t]):
            raise RuntimeError(f"{name}: the pushing world's frame {t} differs from the recorded one (seed {seed}, "
                               f"policy {policy!r}; was the sequence made with another seed, policy, generator "
                               "version or SimConfig?)")
        if t == n_past - 1:
            start = copy.deepcopy(world) if to_end else world
    return start, (world if to_end else None)


def start_world(seed: int, frames: np.ndarray, n_past: int, config: SimConfig = SimConfig(),
                name: str = "reference", policy: str = DEFAULT_POLICY) -> PushWorld:
    """The world of sequence ``seed`` (made by data ``policy``) at frame ``n_past - 1``, its first frames
    checked (`replay_world`)."""
    return replay_world(seed, frames, n_past, config, name=name, policy=policy)[0]
