"""One evaluation for every goal-reaching agent, in the learned world and in the true pushing world.

``evaluate_goal_policy(envs, policy, indices)`` runs the episodes of ``indices`` (reference indices,
so both worlds get the same goals) on E goal envs in lock-step and summarises success rate and
final goal distance: image distance (``goal_distance``), arm distance and, in the true world,
object distance in metres.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from bair_world.planning import CEMPlanner, PlanContext
from bair_world.sim import action_bounds

#: policy(envs, obs) -> (E, 4) actions for the E envs given (their stacked Dict observations).
GoalPolicy = Callable[[list[gym.Env], dict[str, np.ndarray]], np.ndarray]


class RandomPolicy:
    """Uniform random actions in the goal action box (the baseline every table prints)."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.low, self.high = action_bounds()

    def __call__(self, envs, obs) -> np.ndarray:
        return self.rng.uniform(self.low, self.high, (len(envs), 4)).astype(np.float32)


class DoNothingPolicy:
    """Hold still: dx = dy = 0, gripper open, hold height (the floor every table prints)."""

    def __call__(self, envs, obs) -> np.ndarray:
        return np.zeros((len(envs), 4), np.float32)


class PlannerPolicy:
    """A `CEMPlanner` as a policy: plans for all given envs at once (one batched model call per
    imagined step), executes the first ``config.replan_every`` steps of each plan, then plans again."""

    def __init__(self, planner: CEMPlanner):
        self.planner = planner
        self._queued: dict[int, list[np.ndarray]] = {}

    def reset(self) -> None:
        self.planner.reset()
        self._queued = {}

    def __call__(self, envs, obs) -> np.ndarray:
        keys = [id(env.unwrapped) for env in envs]
        need = [j for j, key in enumerate(keys) if not self._queued.get(key)]
        if need:  # envs stepped in lock-step need plans together: one batched planning call
            sequence = self.planner.plan_sequence(plan_context([envs[j] for j in need]))  # (E', H, 4)
            k = self.planner.config.replan_every
            for row, j in enumerate(need):
                self._queued[keys[j]] = list(sequence[row, :k])
        return np.stack([self._queued[key].pop(0) for key in keys]).astype(np.float32)


def plan_context(envs: Sequence[gym.Env]) -> PlanContext:
    """The `PlanContext` of several goal envs (``BairWorldGoal-v0`` / ``PushWorldGoal-v0``, wrapped or
    not), from their public state: history, arm position, goal frame and cost mask, steps left, the
    true worlds (``PushWorldGoal-v0`` only) and the reference index (the episode's key)."""
    goal_envs = [env.unwrapped for env in envs]
    histories = [g.history for g in goal_envs]
    worlds = [w for g in goal_envs for w in (getattr(g, "worlds", None) or [])]
    weights = [g.cost_weights for g in goal_envs]
    return PlanContext([frames for frames, _ in histories], [conds for _, conds in histories],
                       np.stack([g.arm_position for g in goal_envs]), np.stack([g.goal_frame for g in goal_envs]),
                       np.array([g.steps_left for g in goal_envs]), worlds if len(worlds) == len(goal_envs) else None,
                       None if any(w is None for w in weights) else np.stack(weights),
                       np.array([g.reference.index for g in goal_envs]))


@dataclass
class GoalEvaluation:
    """Results of one policy in one world.

    Attributes:
        episodes: one dict per episode: index, success, steps, final goal_distance,
            arm_distance_m, object_distance_m (NaN where the world has no object poses).
        videos: (index, frames uint8 (T, 64, 64, 3), goal (64, 64, 3)) of the first recorded episodes.
    """

    episodes: list[dict] = field(default_factory=list)
    videos: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)
    policy_seconds: float = 0.0
    """Wall time in the policy (for a planner: its model calls or oracle simulation, and the CEM)."""
    env_seconds: float = 0.0
    """Wall time stepping and resetting the envs (the world the episodes are executed in)."""

    def summary(self) -> dict[str, float]:
        """Success rate and mean final distances over the episodes."""
        col = lambda k: np.array([e[k] for e in self.episodes], np.float64)  # noqa: E731
        obj = col("object_distance_m")
        return {"episodes": len(self.episodes), "success_rate": float(col("success").mean()),
                "goal_distance": float(col("goal_distance").mean()), "arm_distance_m": float(col("arm_distance_m").mean()),
                "object_distance_m": float(obj.mean()) if np.isfinite(obj).all() else float("nan"),
                "steps": float(col("steps").mean())}


def evaluate_goal_policy(envs: Sequence[gym.Env], policy: GoalPolicy, indices: Sequence[int], seed: int = 0,
                         record: int = 0, progress: str | None = None) -> GoalEvaluation:
    """Run one episode per reference index, ``len(envs)`` at a time in lock-step.

    Args:
        envs: goal envs of one world (all made alike).
        policy: maps the active envs and their stacked observations to (E, 4) actions; its
            ``reset()`` (if any) is called before each group of episodes.
        indices: reference indices (the same in both worlds gives the same goals and starts).
        seed: episode of index i is reset with ``seed + i``.
        record: keep the frames of this many first episodes for videos.
        progress: show a tqdm bar over the episodes with this description (None: no bar).

    Returns:
        A `GoalEvaluation`; success is ``info["is_success"]`` at the episode's end.
    """
    if not envs:
        raise ValueError("evaluate_goal_policy needs at least one env")
    import time

    from tqdm.auto import tqdm

    result = GoalEvaluation()
    indices = [int(i) for i in indices]
    bar = tqdm(total=len(indices), desc=progress, disable=progress is None, leave=False)
    clock = time.perf_counter
    for start in range(0, len(indices), len(envs)):
        group = indices[start:start + len(envs)]
        active = list(range(len(group)))
        obs = [None] * len(group)
        t0 = clock()
        for j, idx in enumerate(group):
            obs[j], _ = envs[j].reset(seed=seed + idx, options={"index": idx})
        result.env_seconds += clock() - t0
        if hasattr(policy, "reset"):
            policy.reset()
        finals: dict[int, dict] = {}
        while active:
            batch = {k: np.stack([obs[j][k] for j in active]) for k in obs[active[0]]}  # E x (...) -> (E, ...)
            t0 = clock()
            actions = np.asarray(policy([envs[j] for j in active], batch), np.float32).reshape(len(active), 4)
            t1 = clock()
            result.policy_seconds += t1 - t0
            still = []
            for j, action in zip(active, actions):
                obs[j], _, terminated, truncated, info = envs[j].step(action)
                if terminated or truncated:
                    finals[j] = info
                    bar.update(1)
                else:
                    still.append(j)
            result.env_seconds += clock() - t1
            active = still
        for j, idx in enumerate(group):
            info = finals[j]
            result.episodes.append({"index": idx, "success": bool(info["is_success"]), "steps": int(info["step"]),
                                    "goal_distance": float(info["goal_distance"]),
                                    "arm_distance_m": float(info["arm_distance_m"]),
                                    "object_distance_m": float(info.get("object_distance_m", np.nan)),
                                    "weighted_distance": float(info.get("weighted_distance", np.nan))})
            if len(result.videos) < record:
                env = envs[j].unwrapped
                result.videos.append((idx, env.history[0], env.goal_frame.copy()))
    bar.close()
    return result


def compare_policies(runs: Sequence[tuple[str, str, Sequence[gym.Env], GoalPolicy]], indices: Sequence[int],
                     out_dir, seed: int = 0, log: Callable[[str], None] = print) -> str:
    """Evaluate every run on the same goals, write its first episode's video, return the results table.

    Args:
        runs: (policy name, world name, envs, policy) rows, evaluated in order.
        indices: reference indices of the goal episodes (the same for every run).
        out_dir: where ``<policy>_<world>_ref<index>.mp4`` videos go (see `write_goal_videos`).
        seed: seed of every run's env resets.
        log: receives a progress line per run and per video written.
    """
    import time

    rows = []
    for name, world, envs, policy in runs:
        start = time.perf_counter()
        ev = evaluate_goal_policy(envs, policy, indices, seed=seed, record=1)
        log(f"{name:<10} in the {world:<7} world: {len(ev.episodes)} episodes in {time.perf_counter() - start:.1f} s")
        for path in write_goal_videos(ev, out_dir, f"{name}_{world}"):
            log(f"  wrote {path}")
        rows.append((name, world, ev))
    return format_table(rows)


def format_table(rows: Sequence[tuple[str, str, GoalEvaluation]]) -> str:
    """A text table of (policy, world, evaluation) rows."""
    head = f"{'policy':<14} {'world':<8} {'episodes':>8} {'success':>8} {'goal dist':>10} {'arm (m)':>8} {'objects (m)':>11} {'steps':>6}"
    lines = [head, "-" * len(head)]
    for policy, world, ev in rows:
        s = ev.summary()
        obj = "n/a" if not np.isfinite(s["object_distance_m"]) else f"{s['object_distance_m']:.4f}"
        lines.append(f"{policy:<14} {world:<8} {s['episodes']:>8d} {s['success_rate']:>8.2f} {s['goal_distance']:>10.4f} "
                     f"{s['arm_distance_m']:>8.4f} {obj:>11} {s['steps']:>6.1f}")
    lines.append("goal dist: RMSE of 16x16 area-averaged frames in [0, 1] (bair_world.metrics.goal_distance); "
                 "arm/objects: mean distance to the goal state in metres")
    return "\n".join(lines)


def write_goal_videos(evaluation: GoalEvaluation, out_dir, prefix: str, *, scale: int = 4, fps: float = 5.0) -> list:
    """Write each recorded episode as ``<out_dir>/<prefix>_ref<index>.mp4``: episode frame | goal, upscaled.

    Returns:
        The paths written.
    """
    from pathlib import Path

    from bair_world.video import write_frames

    paths = []
    for index, frames, goal in evaluation.videos:
        # (T, 64, 64, 3) beside (T, 64, 64, 3) -> (T, 64, 128, 3), nearest-upscaled -> (T, 64s, 128s, 3)
        side = np.concatenate([frames, np.broadcast_to(goal, frames.shape)], axis=2)
        side = side.repeat(scale, axis=1).repeat(scale, axis=2)
        paths.append(write_frames(Path(out_dir) / f"{prefix}_ref{index}.mp4", side, fps=fps))
    return paths
