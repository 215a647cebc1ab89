"""On-policy data (issue 30): a policy's episodes, executed in the true pushing world, saved as
BAIR-format sequences with their seeds, so training can mix in what agents actually do.

``collect_onpolicy(envs, policy, indices, out)`` runs one episode per reference index on
``PushWorldGoal-v0`` envs (`bair_world.envs.goal_eval.evaluate_goal_policy`'s lock-step loop) and
writes each as ``<out>/<split>/traj_<a>_to_<b>/<i>/`` (PNG frames, ``actions.csv``,
``endeffector_positions.csv``, ``poses.npz``; atomically, `write_sequence`) and ``<out>/onpolicy.json``
(atomically, after every group) with what restarts it: the reference's seed and data policy (the
context frames are that sequence's first ``n_past``), ``n_past``, the goal index, the policy's step
count and success. Row t of ``actions.csv`` is the action executed from frame t (as the world
executes it: clipped and quantised); an episode that ended early (success) is continued in the true
world holding still (zeros) to the reference's length, and its last row is zeros (never executed).
`replay_sequence` rebuilds the true world from the recorded seed and drives it with the recorded
actions: it reproduces the frames byte for byte (a test checks it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bair_world.data.bair_folder import read_sequence
from bair_world.data.synthetic import sequence_dir
from bair_world.sim import PushWorld, SimConfig, sequence_worlds

MANIFEST = "onpolicy.json"


@dataclass(frozen=True)
class EpisodeRecord:
    """What restarts one on-policy sequence (an entry of ``onpolicy.json``)."""

    seed: int
    """The pushing-world seed of the reference the episode started from."""
    policy: str
    """The data policy that made the reference's context frames."""
    n_past: int
    """Context frames (the reference's); the agent acted from frame ``n_past - 1``."""
    index: int
    """The goal env's reference (or pushing-goal) index."""
    steps: int
    """Steps the agent took (the rest, to the reference's length, held still)."""
    success: bool
    """Whether the episode ended in success."""


def replay_sequence(record: EpisodeRecord, actions: np.ndarray, length: int,
                    config: SimConfig = SimConfig()):
    """Yield ``(t, world)`` for t = 0 .. length-1: the true world rebuilt from ``record.seed`` (its
    context replayed by its data policy in float64) and driven by the recorded ``actions`` (T, 4)
    from frame ``n_past - 1`` on. The world shows frame t when yielded (stepped in place after)."""
    world: PushWorld | None = None
    for t, world, _ in sequence_worlds(record.seed, record.n_past, config, record.policy):
        yield t, world
    for t in range(record.n_past, length):
        world.step(np.asarray(actions[t - 1], np.float64), world.position)
        yield t, world


def _episode_arrays(env, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames (T, 64, 64, 3), actions (T, 4), positions (T, 3)) of a finished episode, held still to ``length``."""
    frames, conds = env.history  # (t+1, 64, 64, 3), (t, 7)
    frames, actions = list(frames), [c[:4] for c in conds]
    positions = [c[4:] for c in conds] + [env.world.position.astype(np.float32)]
    while len(frames) < length:  # ended early: the true world holds still
        actions.append(np.zeros(4, np.float32))
        frames.append(env.world.step(np.zeros(4), env.world.position).copy())
        positions.append(env.world.position.astype(np.float32))
    actions.append(np.zeros(4, np.float32))  # the last frame's action is never executed
    return np.stack(frames), np.stack(actions).astype(np.float32), np.stack(positions).astype(np.float32)


def _write(out: Path, split: str, number: int, env, record: EpisodeRecord, length: int) -> None:
    """Write one episode, its poses from the replay, checking the replay reproduces its frames."""
    from bair_world.data.bair_folder import write_sequence

    frames, actions, positions = _episode_arrays(env, length)
    poses = np.empty((length, 9, 3), np.float32)
    for t, world in replay_sequence(record, actions, length, env.sim_config):
        if not np.array_equal(world.frame, frames[t]):
            raise RuntimeError(f"episode of reference {record.index}: the replayed frame {t} differs from the executed one")
        poses[t] = world.pose_slots()
    write_sequence(sequence_dir(out, split, number), frames, actions, positions, poses=poses)


def read_manifest(out: str | Path) -> dict:
    """``<out>/onpolicy.json`` ({"sequences": {split: [record dicts]}}), or an empty one."""
    path = Path(out) / MANIFEST
    if not path.exists():
        return {"generator": "bair_world.envs.onpolicy", "sequences": {}}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable on-policy manifest ({exc})") from None


def collect_onpolicy(envs: Sequence, policy, indices: Sequence[int], out: str | Path, split: str = "train",
                     seed: int = 0, name: str = "policy") -> list[EpisodeRecord]:
    """Run ``policy`` on ``PushWorldGoal-v0`` envs for ``indices`` and append the episodes to ``out``.

    Returns:
        The records written (appended after those already in ``out``'s manifest).

    Raises:
        TypeError: an env is not over the true pushing world (no ``world``).
    """
    from bair_world.envs.goal_eval import evaluate_goal_policy
    from bair_world.envs.push_world_env import PushWorldGoalEnv
    from bair_world.io import atomic_write_json

    if not all(isinstance(getattr(env, "unwrapped", env), PushWorldGoalEnv) for env in envs):
        raise TypeError("collect_onpolicy executes episodes in the true world: pass PushWorldGoal-v0 envs")
    out = Path(out)
    manifest = read_manifest(out)
    records: list[EpisodeRecord] = []
    for start in range(0, len(indices), len(envs)):
        group = [int(i) for i in indices[start:start + len(envs)]]
        ev = evaluate_goal_policy(envs, policy, group, seed=seed)
        listed = manifest["sequences"].setdefault(split, [])
        for env, episode in zip(envs, ev.episodes):
            g = env.unwrapped
            ref = g.reference
            record = EpisodeRecord(int(g.reference_pool.seed(ref.index)), g.reference_pool.policy, g.n_past,
                                   episode["index"], episode["steps"], episode["success"])
            _write(out, split, len(listed), g, record, len(ref))
            listed.append(vars(record) | {"agent": name})
            records.append(record)
        atomic_write_json(out / MANIFEST, manifest)
    return records


def check_replay(out: str | Path, split: str = "train") -> int:
    """Replay every recorded sequence of ``split`` from its seed and actions; returns how many matched.

    Raises:
        RuntimeError: naming the first sequence whose replayed frames differ.
    """
    out = Path(out)
    entries = read_manifest(out)["sequences"].get(split, [])
    for number, entry in enumerate(entries):
        seq = sequence_dir(out, split, number)
        frames, actions, _ = read_sequence(seq, None)
        record = EpisodeRecord(**{k: entry[k] for k in EpisodeRecord.__dataclass_fields__})
        for t, world in replay_sequence(record, actions, len(frames)):
            if not np.array_equal(world.frame, frames[t]):
                raise RuntimeError(f"{seq}: frame {t} of the replay from seed {record.seed} differs from {t}.png")
    return len(entries)
