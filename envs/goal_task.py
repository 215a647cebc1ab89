"""`GoalEnvBase`: a goal task whichever world plays it, shared by ``BairWorldGoal-v0``
(`bair_world.envs.goal`, the learned world) and ``PushWorldGoal-v0`` (`bair_world.envs.push_world_env`,
the true world): reset to a goal's context, the Dict observation and the info; the goal, reward and
success are the env's task's (`bair_world.goal_tasks`, one object, ``self.task``).
"""

from __future__ import annotations

import abc
from typing import Any

import gymnasium as gym
import numpy as np

from bair_world.data.batch import cond_of
from bair_world.envs.bair_world_env import RENDER_FPS
from bair_world.envs.goal_robotics import RoboticsGoalAPI
from bair_world.envs.goal_spaces import ROBOTICS_KEYS, goal_action_space, goal_observation_space
from bair_world.envs.options import check_bool_option, check_int_option
from bair_world.envs.references import Reference, reset_index
from bair_world.envs.spaces import check_render_mode, clip_checked_actions
from bair_world.goal_tasks import GoalState, GoalTask, make_task
from bair_world.metrics import goal_distance
from bair_world.sim import SimConfig, quantise_action


class GoalEnvBase(RoboticsGoalAPI, gym.Env, abc.ABC):
    """The goal-reaching task, independent of which world plays it (see `BairWorldGoalEnv`).

    Subclasses call ``_setup``, set ``n_past``, call ``_prepare`` (the task's goals) and
    implement ``_num_references``, ``_begin`` (start a reference's episode, return it) and
    ``_advance`` (one transition, return frame and position); ``_poses`` (the objects' poses, None by
    default) and ``_complete`` (fill in what the goal knows only in this world) where the world can.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": RENDER_FPS}
    n_past: int
    sim_config: SimConfig

    def _setup(self, render_mode: str | None, sim_config: SimConfig, robotics_keys: bool, task: str | GoalTask,
               success_threshold: float | None = None, push_tolerance: float | None = None) -> None:
        """Check the options, make the task (`bair_world.goal_tasks.make_task`) and the spaces."""
        check_render_mode(render_mode, self.metadata)
        self.task = make_task(task, success_threshold, push_tolerance)
        self.render_mode, self.sim_config = render_mode, sim_config
        self.robotics_keys = check_bool_option("robotics_keys", robotics_keys)
        self.observation_space = goal_observation_space(sim_config, self.robotics_keys)
        self.action_space = goal_action_space(sim_config)
        self._ref: Reference | None = None
        self._done = False
        self.goal = None  # the current episode's goal (the task's: `ReachGoal`, `PushGoal`)

    def _prepare(self, references, push_goals, num_goals: int) -> None:
        """The task's goals in ``references`` (`bair_world.goal_tasks.GoalTask.prepare`); set ``n_past`` first."""
        check_int_option("num_goals", num_goals, 1)
        self.task.prepare(references, self.n_past, push_goals, num_goals)

    # -- hooks ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def _num_references(self) -> int:
        """Size of the reference pool (``reset``'s ``options["index"]`` range)."""

    @abc.abstractmethod
    def _begin(self, index: int, torch_seed: int) -> Reference:
        """Start reference ``index``'s episode (latents seeded with ``torch_seed``) and return it."""

    @abc.abstractmethod
    def _advance(self, action: np.ndarray, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One transition under (action, position): the next frame (64, 64, 3) uint8 and position (3,)."""

    def _poses(self) -> np.ndarray | None:
        """The objects' poses (N, 3) now, where this world has them (None: the learned world)."""
        return None

    def _complete(self, goal):
        """The task's goal with what only this world knows filled in (default: as it is)."""
        return goal

    def _state(self) -> GoalState:
        return GoalState(self._frames[-1], self._position, self._poses())

    # -- API -----------------------------------------------------------------------------------
    @property
    def reference(self) -> Reference:
        """The current reference rollout (its last frame is the goal)."""
        if self._ref is None:
            raise RuntimeError("no reference before reset()")
        return self._ref

    @property
    def goal_frame(self) -> np.ndarray:
        """The current goal image (64, 64, 3) uint8."""
        self.reference  # noqa: B018  (raises before reset)
        return self.goal.goal_frame

    @property
    def history(self) -> tuple[np.ndarray, np.ndarray]:
        """(frames uint8 (t+1, 64, 64, 3) seen so far, context included; conds float32 (t, 7) taken)."""
        self.reference  # noqa: B018  (raises before reset)
        return np.stack(self._frames), np.asarray(self._conds, np.float32).reshape(-1, 7)  # (t, 7), t may be 0

    @property
    def arm_position(self) -> np.ndarray:
        """The end-effector position (3,) float64 metres (the observation's is float32, clipped to its box)."""
        self.reference  # noqa: B018  (raises before reset)
        return self._position.copy()

    @property
    def steps_left(self) -> int:
        """Steps before the episode truncates."""
        self.reference  # noqa: B018  (raises before reset)
        return self._max_steps - self._steps

    @property
    def cost_weights(self) -> np.ndarray | None:
        """The goal's cost mask float32 (64, 64) (a pushing goal's `bair_world.push_goals.goal_weights`),
        or None (the plain `goal_distance`)."""
        return None if self.goal is None else self.goal.weights

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        count = self.task.count(self._num_references())
        index, torch_seed = reset_index(self.np_random, options, count, type(self).__name__)
        ref = self._begin(self.task.reference_index(int(index)), torch_seed)
        ref.check_steps(self.n_past)
        self.goal = self._complete(self.task.goal(int(index), ref))
        self._ref, self._done, self._steps = ref, False, 0
        self._max_steps = len(ref) - self.n_past
        self._frames = [ref.frames[t].copy() for t in range(self.n_past)]
        self._conds = [ref.conds[t].copy() for t in range(self.n_past - 1)]
        self._position = ref.positions[self.n_past - 1].astype(np.float64)
        return self._observation(), self._info()

    def step(self, action):
        if self._ref is None:
            raise RuntimeError(f"{type(self).__name__}.step() called before reset()")
        if self._done:
            raise RuntimeError(f"{type(self).__name__}.step() after the episode ended; call reset()")
        action = self._checked(action)
        cond = cond_of(action, self._position)  # (7,) cond_t = (action_t, position_t)
        frame, self._position = self._advance(action, self._position.copy())
        self._frames.append(frame)
        self._conds.append(cond)
        self._steps += 1
        info = self._info()
        terminated = info["is_success"]
        truncated = not terminated and self._steps >= self._max_steps
        self._done = terminated or truncated
        return self._observation(), float(self.task.reward(frame, self.goal.goal_frame)), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """The current frame (64, 64, 3) uint8 for ``render_mode="rgb_array"``; None otherwise."""
        if self.render_mode != "rgb_array":
            return None
        if self._ref is None:
            raise RuntimeError("render() before reset()")
        return self._frames[-1].copy()

    def plan_cost(self, name: str = "pixel", readout=None, encode=None, weight: float = 1.0):
        """The planner's cost ``name`` (`bair_world.plan_costs`: "pixel", "readout", "mix") bound to this
        env's current goal, for a user's own planner: ``score(frames=None, codes=None)`` with imagined
        frames uint8 (..., 64, 64, 3) (every cost reads frames; ``codes`` for a cost of the predictor's
        codes) -> costs (...), 0 at the goal.

        Args:
            name: the cost (the planner's `ModelDynamics` takes the same ones).
            readout: a `bair_world.readout.StateReadout` for "readout"/"mix"; default: the one saved with
                ``BairWorldGoal-v0``'s checkpoint (refused if trained on another model).
            encode: uint8 frames (N, 64, 64, 3) -> the model's encoder skips (`WorldModel.encode_skips`;
                default: this env's model, ``BairWorldGoal-v0`` only).
            weight: the readout's weight in "mix".

        Call it again after ``reset`` (a new goal).
        """
        from bair_world.data.batch import frames_to_float
        from bair_world.envs.goal_eval import plan_context
        from bair_world.plan_costs import make_cost

        core, checkpoint = getattr(getattr(self, "episodes", None), "core", None), getattr(
            getattr(self, "episodes", None), "checkpoint", None)
        if name != "pixel" and readout is None and checkpoint is not None:
            from bair_world.checkpoint import read_config
            from bair_world.readout import load_readout

            readout, _ = load_readout(checkpoint, read_config(checkpoint).get("model_sha256"))
        cost = make_cost(name, readout, weight)
        if encode is None and core is not None:
            encode = lambda frames: core.encode_skips(frames_to_float(frames))  # noqa: E731
        ctx = plan_context([self])
        cost.begin(ctx, encode)

        def score(frames=None, codes=None) -> np.ndarray:
            frames = None if frames is None else np.asarray(frames)[None]  # (...) -> (1, ...): one env
            codes = None if codes is None else torch_as(codes)[None]
            return cost(ctx, frames=frames, codes=codes)[0]

        return score

    # -- helpers -------------------------------------------------------------------------------
    def _checked(self, action) -> np.ndarray:
        """(4,) float64: checked, clipped into the action box and quantised as the pushing world executes."""
        low, high = self.action_space.low, self.action_space.high
        return quantise_action(clip_checked_actions(action, None, low, high, dtype=np.float64)[0], self.sim_config)

    def _observation(self) -> dict[str, np.ndarray]:
        box = self.observation_space[ROBOTICS_KEYS["position"] if self.robotics_keys else "position"]
        obs = {"image": self._frames[-1].copy(), "goal": self.goal.goal_frame.copy(),
               "position": np.clip(self._position, box.low, box.high).astype(np.float32)}
        return {ROBOTICS_KEYS[k]: v for k, v in obs.items()} if self.robotics_keys else obs

    def _info(self) -> dict[str, Any]:
        """The common entries (goal distance, success, arm distance, step, reference) and the task's."""
        state = self._state()
        return {"goal_distance": float(goal_distance(state.frame, self.goal.goal_frame)),
                "is_success": bool(self.task.success(state, self.goal)),
                "arm_distance_m": float(np.linalg.norm(self._position - self.goal.goal_position)),
                "step": self._steps, "index": self._ref.index, "rollout_id": self._ref.rollout_id,
                **self.task.info(state, self.goal)}


def torch_as(codes):
    """Codes as a float32 torch tensor (a user may hand numpy)."""
    import torch

    return torch.as_tensor(np.asarray(codes, np.float32)) if not hasattr(codes, "detach") else codes.float()
