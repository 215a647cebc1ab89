"""The action sources of the counterfactual evaluation: one registry (`SOURCES`) that the evaluation,
its report, plots and tables, ``bair-world evaluate --actions`` and ``bair-world rollout --actions``
all read.

The sources are ``recorded`` (each reference's own actions, replayed against the true world as
driven) and every concrete data policy of `bair_world.sim.policy` (``scripted``, ``push``,
``random``, ``sweep``: the one registry of policies, so a new policy is a new source with no other
change). A policy source gets one policy per row, seeded from (evaluation seed, reference index),
asked for a new row at even steps and held at odd ones, as in the data (`bair_world.sim.policy.held`).
Imports no torch (the CLIs' ``--help`` lists the sources).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from bair_world.sim.config import SimConfig
from bair_world.sim.policy import CONCRETE_POLICIES, held, make_policy

if TYPE_CHECKING:
    from bair_world.counterfactual_data import Starts

RECORDED = "recorded"
SOURCES = (RECORDED, *CONCRETE_POLICIES)
"""Every action source: the references' recorded actions and each concrete data policy."""
DEFAULT_SOURCES = (RECORDED, "random", "push")
"""What `bair_world.counterfactual.evaluate` runs unless told otherwise."""
_ACTION_STREAM = 0xAC7  # keeps the sources' draws apart from every other use of the seed


def check_sources(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as a tuple if every one is a source of `SOURCES`; else a ValueError naming the
    unknown ones and the known ones."""
    unknown = [name for name in names if name not in SOURCES]
    if unknown:
        raise ValueError(f"unknown action source(s) {unknown}; choose from {list(SOURCES)}")
    return tuple(names)


class SourceActions:
    """The action rows (B, 4) float32 of one source for the rows of a batch, step by step.

    Raises:
        ValueError: an unknown source (`check_sources`).
    """

    def __init__(self, source: str, starts: Starts, rows: np.ndarray, seed: int, config: SimConfig):
        check_sources([source])
        self.source, self.starts, self.rows = source, starts, rows
        indices = [int(starts.indices[r]) for r in rows]
        self.policies = [] if source == RECORDED else [
            make_policy(source, i, np.random.default_rng([_ACTION_STREAM, seed, i]), config) for i in indices]
        self.prev: np.ndarray | None = None

    def _fresh(self, worlds) -> np.ndarray:
        return np.stack([p.act(w.position, w.object_poses, w.radii) for p, w in zip(self.policies, worlds)])  # (B, 4)

    def __call__(self, t: int, worlds) -> np.ndarray:
        recorded = self.starts.actions[self.rows, t]  # (B, 4)
        if self.source == RECORDED:
            return recorded.astype(np.float32)
        prev = self.prev if self.prev is not None else self.starts.actions[self.rows, t - 1] if t > 0 else recorded
        self.prev = held(t, prev, lambda: self._fresh(worlds)).astype(np.float32)
        return self.prev
