"""The true pushing world as Gymnasium envs: ``PushWorld-v0`` and ``PushWorldGoal-v0`` (no model).

They have the spaces and API of ``BairWorld-v0`` / ``BairWorldGoal-v0`` and replay the same
references, so an agent or planner built in the learned world is scored in the world it imitates.
A reference of the built-in pool (`SimReferences`) is rollout ``seed_offset + index`` of the
pushing world: reset rebuilds that `PushWorld` and replays the reference's first context actions,
checking that the frames come out equal to the reference's, byte for byte.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np

from bair_world.envs.bair_world_env import RENDER_FPS
from bair_world.checkpoint import context_frames, resolve_checkpoint
from bair_world.envs.goal_task import GoalEnvBase
from bair_world.envs.episodes import episode_info
from bair_world.envs.options import WorldOptions
from bair_world.envs.references import Reference, ReferenceSource, SimReferences, reset_index
from bair_world.envs.spaces import action_space, check_render_mode, clip_checked_actions, cond_bounds, observation_space
from bair_world.goal_tasks import NUM_PUSH_GOALS, GoalTask
from bair_world.metrics import psnr as psnr_metric
from bair_world.sim import PushWorld, SimConfig, action_bounds, position_bounds, replay_world

#: Context frames the true world replays at reset without a checkpoint (every model preset's).
DEFAULT_N_PAST = 2


def start_world(references: ReferenceSource, index: int, n_past: int,
                sim_config: SimConfig = SimConfig(), replay_to_end: bool = False) -> tuple[Reference, PushWorld, PushWorld | None]:
    """Rebuild reference ``index``'s world and replay it to frame ``n_past - 1`` (and optionally to its end).

    Any source that knows its references' seeds works (`ReferenceSource.seed`): the built-in pool,
    and synthetic dataset splits whose seeds were recorded (with their data policy,
    `ReferenceSource.policy`). The replay re-runs the sequence's policy in float64 (`bair_world.sim.replay_world`), so the returned world is in exactly the reference's
    state, and every replayed frame is checked against the reference's.

    Returns:
        (reference, world at frame n_past - 1, world at the reference's last frame or None).

    Raises:
        TypeError: the source knows no seed for ``index`` (real BAIR data cannot be replayed).
        RuntimeError: a replayed frame differs from the reference's (another generator version or config).
    """
    seed = references.seed(int(index))
    if seed is None:
        raise TypeError(f"the true pushing world replays only references with a known seed (the built-in world's, "
                        f"or a synthetic dataset's), got {references!r}")
    ref = references[index]
    start, end = replay_world(seed, ref.frames, n_past, sim_config, to_end=replay_to_end, name=ref.rollout_id,
                              policy=references.policy)
    return ref, start, end


def true_world(world: WorldOptions, env_name: str) -> tuple[int, SimReferences]:
    """(n_past, reference pool) of a true-world env from the learned world's options.

    ``n_past``: the checkpoint's when one is given (as in the learned world), else `DEFAULT_N_PAST`
    (the models' context length). The pool is `WorldOptions.reference_pool`,
    which must be the built-in world's (`SimReferences`): only those rollouts can be replayed here.

    Raises:
        TypeError: another reference source.
    """
    n_past = DEFAULT_N_PAST if world.checkpoint is None else context_frames(resolve_checkpoint(world.checkpoint))
    pool = world.reference_pool()
    if not isinstance(pool, SimReferences):
        raise TypeError(f"{env_name} replays only built-in references (SimReferences), got {pool!r}")
    return int(n_past), pool


def sim_cond_bounds(config: SimConfig = SimConfig()) -> tuple[np.ndarray, np.ndarray]:
    """(7,) float32 low/high of the cond [dx, dy, grip, z command, x, y, z] the pushing world executes:
    its 4-dim action box (`bair_world.sim.action_bounds`) and its workspace."""
    (a_low, a_high), (p_low, p_high) = action_bounds(config), position_bounds(config)
    return (np.concatenate([a_low, p_low]).astype(np.float32), np.concatenate([a_high, p_high]).astype(np.float32))


class PushWorldEnv(gym.Env):
    """``PushWorld-v0``: ``BairWorld-v0``'s spaces and API over the true pushing world.

    Action ``Box((7,), float32)`` = 4 action + 3 end-effector position (the position the action is
    relative to, see `bair_world.sim.PushWorld.step`); bounds are the pushing world's limits, or the
    checkpoint's action box when ``checkpoint`` is given (then the space equals ``BairWorld-v0``'s).
    Observation ``Box(0, 255, (64, 64, 3), uint8)``; reward 0; ``info`` as ``BairWorld-v0``
    (``psnr`` of the true frame against the reference's: 100 dB when the reference is replayed).

    Args:
        render_mode: None or "rgb_array".
        sim_config: the world's configuration (must be the one the references were made with).
        **world: the learned world's options (`bair_world.envs.options.WorldOptions`, see `true_world`),
            so the same keywords make both worlds: ``references`` / ``num_references`` (the built-in
            pool only), ``checkpoint`` (its context length and action bounds; None: `DEFAULT_N_PAST`
            and the world's own limits); ``device``, ``precision`` and ``compile`` are accepted and
            unused (no model runs).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": RENDER_FPS}

    def __init__(self, *, render_mode: str | None = None, sim_config: SimConfig = SimConfig(), **world: Any):
        check_render_mode(render_mode, self.metadata)
        options = WorldOptions(**world)
        self.render_mode, self.sim_config = render_mode, sim_config
        self.n_past, self.reference_pool = true_world(options, "PushWorld-v0")
        if options.checkpoint is not None:
            from bair_world.checkpoint import load_checkpoint

            model, config = load_checkpoint(resolve_checkpoint(options.checkpoint), "cpu")
            self.low, self.high = cond_bounds(config.get("normalisation"), model.cond_mean.numpy(),
                                              model.cond_std.numpy())
        else:
            self.low, self.high = sim_cond_bounds(sim_config)
        self.observation_space = observation_space()
        self.action_space = action_space(self.low, self.high)
        self.world: PushWorld | None = None
        self._ref: Reference | None = None

    @property
    def reference(self) -> Reference:
        if self._ref is None:
            raise RuntimeError("no reference before reset()")
        return self._ref

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        index, _ = reset_index(self.np_random, options, len(self.reference_pool), "PushWorld-v0")
        self._ref, self.world, _ = start_world(self.reference_pool, int(index), self.n_past, self.sim_config)
        self._ref.check_steps(self.n_past)
        self.t, self._truncated = self.n_past - 1, False
        return self.world.frame.copy(), self._info()

    def step(self, action):
        if self.world is None:
            raise RuntimeError("PushWorldEnv.step() called before reset()")
        if self._truncated:
            raise RuntimeError("PushWorldEnv.step() after the episode was truncated; call reset()")
        cond = clip_checked_actions(action, None, self.low, self.high)[0]  # (7,), clipped
        frame = self.world.step(cond[:4], cond[4:])
        self.t += 1
        self._truncated = self.t >= len(self._ref) - 1
        psnr = float(psnr_metric(frame, self._ref.frames[self.t], channel_axis=-1))
        return frame.copy(), 0.0, False, self._truncated, self._info({"psnr": psnr})

    def _info(self, metrics: dict[str, float] | None = None) -> dict[str, Any]:
        """`episode_info` and this world's extra: ``true_position`` (3,), the arm's."""
        info = episode_info(self._ref, self.t, self.n_past, metrics)
        info["true_position"] = self.world.position.astype(np.float32)
        return info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self.world is None:
            raise RuntimeError("render() before reset()")
        return self.world.frame.copy()


class PushWorldGoalEnv(GoalEnvBase):
    """``PushWorldGoal-v0``: ``BairWorldGoal-v0``'s task, spaces and reward in the true pushing world.

    The goal is the reference's last frame and, underneath it, the reference's final world state.
    ``info`` adds ``object_distance_m``: the mean distance (metres) between every object's centre
    and its centre in the goal state, from the simulator's poses; with ``arm_distance_m`` it gives
    the final goal distance in physical units. See `bair_world.envs.goal.BairWorldGoalEnv`.

    The task (`bair_world.goal_tasks`) judges success on this world's state (the objects' poses):
    with ``task="push"`` the goal is a `bair_world.push_goals.PushGoal` (one object moved >= 5 cm),
    success (and termination) = that object's centre within ``push_tolerance`` metres of its goal
    centre; ``info["object_distance_m"]`` is that object's distance (``objects_mean_distance_m`` the
    mean over all objects), ``arm_distance_m`` the end-effector's distance to its goal-state position.

    Args:
        render_mode, success_threshold, robotics_keys, task, push_goals, num_goals: as ``BairWorldGoal-v0``.
        push_tolerance: the pushing tasks' success radius in metres (default
            `bair_world.push_goals.PUSH_TOLERANCE`).
        sim_config: the world's configuration (must be the one the references were made with).
        **world: the learned world's options, as ``PushWorld-v0`` (the action box is the pushing
            world's whatever the checkpoint).
    """

    def __init__(self, *, render_mode: str | None = None, success_threshold: float | None = None,
                 sim_config: SimConfig = SimConfig(), robotics_keys: bool = False, task: str | GoalTask = "reach",
                 push_goals=None, num_goals: int = NUM_PUSH_GOALS, push_tolerance: float | None = None,
                 **world: Any):
        self._setup(render_mode, sim_config, robotics_keys, task, success_threshold, push_tolerance)
        self.n_past, self.reference_pool = true_world(WorldOptions(**world), "PushWorldGoal-v0")
        self._prepare(self.reference_pool, push_goals, num_goals)
        self.world: PushWorld | None = None

    @property
    def worlds(self) -> list[PushWorld]:
        """[the current world] (what `bair_world.planning.SimDynamics` plans with)."""
        if self.world is None:
            raise RuntimeError("no world before reset()")
        return [self.world]

    def _num_references(self) -> int:
        return len(self.reference_pool)

    def _advance(self, action: np.ndarray, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        frame = self.world.step(action, position)
        return frame.copy(), self.world.position

    def _begin(self, index: int, torch_seed: int) -> Reference:
        ref, self.world, _ = start_world(self.reference_pool, index, self.n_past, self.sim_config)
        return ref

    def _poses(self) -> np.ndarray:
        return self.world.object_poses

    def _complete(self, goal):
        """A goal without the goal state's object poses (a reference's end) gets them from a replay to its end."""
        if goal.goal_poses is not None:
            return goal
        _, _, final = start_world(self.reference_pool, goal.index, self.n_past, self.sim_config, replay_to_end=True)
        return replace(goal, goal_poses=final.object_poses)
