"""`GoalEnvBase`: the goal-reaching task whichever world plays it, shared by ``BairWorldGoal-v0``
(`bair_world.envs.goal`, the learned world) and ``PushWorldGoal-v0`` (`bair_world.envs.push_world_env`,
the true world): reset to a reference's context, reward ``-goal_distance`` to the goal frame, success
and termination, the Dict observation and the info.
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
from bair_world.envs.options import check_bool_option, check_int_option, check_number_option
from bair_world.envs.references import Reference, reset_index
from bair_world.envs.spaces import check_render_mode, clip_checked_actions
from bair_world.metrics import goal_distance
from bair_world.planning import weighted_distance
from bair_world.sim import SimConfig, quantise_action

#: Default success threshold on `bair_world.metrics.goal_distance` (RMSE of 16x16 area means in
#: [0, 1]). Measured on the built-in references: the frame one step before the goal lies at
#: 0.01-0.06 from it, the start at 0.05-0.09, 28 random actions end at 0.05-0.10.
SUCCESS_THRESHOLD = 0.025
#: The goal tasks: "reach" (goal = a reference's last frame; success on the image) and "push"
#: (goal = a state in which one object moved >= 5 cm, `bair_world.envs.push_goals`; success on the
#: true world's state in ``PushWorldGoal-v0``).
TASKS = ("reach", "push")
#: Number of pushing goals an env with ``task="push"`` draws from (`push_goals`' first ones).
NUM_PUSH_GOALS = 64
#: Success threshold of ``task="push"`` in the learned world, which has no object state: the
#: weighted image distance (`bair_world.planning.weighted_distance`) to the goal. An image proxy;
#: the benchmark judges pushing in the true world (``PushWorldGoal-v0``).
PUSH_IMAGE_THRESHOLD = 0.06


class GoalEnvBase(RoboticsGoalAPI, gym.Env, abc.ABC):
    """The goal-reaching task, independent of which world plays it (see `BairWorldGoalEnv`).

    Subclasses set ``n_past``, ``sim_config`` and implement ``_num_references``, ``_begin`` (start
    a reference's episode, return it) and ``_advance`` (one transition, return frame and position).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": RENDER_FPS}
    n_past: int
    sim_config: SimConfig

    def _setup(self, render_mode: str | None, success_threshold: float | None, sim_config: SimConfig,
               robotics_keys: bool, task: str = "reach") -> None:
        check_render_mode(render_mode, self.metadata)
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.task = task
        if success_threshold is None:
            success_threshold = self._default_threshold()
        success_threshold = check_number_option("success_threshold", success_threshold, 0.0)
        self.render_mode, self.success_threshold, self.sim_config = render_mode, success_threshold, sim_config
        self.robotics_keys = check_bool_option("robotics_keys", robotics_keys)
        self.observation_space = goal_observation_space(sim_config, self.robotics_keys)
        self.action_space = goal_action_space(sim_config)
        self._ref: Reference | None = None
        self._done = False
        self.push_goals = None  # task="push": the goal list (`_load_push_goals`)
        self.goal = None  # task="push": the current `PushGoal`

    def _default_threshold(self) -> float:
        return SUCCESS_THRESHOLD if self.task == "reach" else PUSH_IMAGE_THRESHOLD

    def _load_push_goals(self, references, push_goals, num_goals: int) -> None:
        """task="push": take ``push_goals`` or find the first ``num_goals`` in ``references``."""
        check_int_option("num_goals", num_goals, 1)
        if self.task != "push":
            return
        from bair_world.envs.push_goals import push_goals as find_goals
        from bair_world.envs.references import SimReferences

        if not isinstance(references, SimReferences):
            raise TypeError(f"task='push' needs the built-in references (SimReferences), got {references!r}")
        self.push_goals = list(push_goals) if push_goals is not None else find_goals(num_goals, references, n_past=self.n_past)
        if not self.push_goals:
            raise ValueError("task='push' needs at least one goal")

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

    def _extra_info(self) -> dict[str, Any]:
        return {}

    def _success(self, distance: float) -> bool:
        """Success of the current state (reach: the image distance; push: see the subclasses)."""
        if self.task == "reach":
            return distance <= self.success_threshold
        return self._weighted() <= self.success_threshold

    def _weighted(self) -> float:
        return float(weighted_distance(self._frames[-1], self._goal_frame, self.goal.weights))

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
        return self._goal_frame

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
        """The pushing goal's cost mask float32 (64, 64) (`bair_world.envs.push_goals.PushGoal.weights`);
        None for ``task="reach"`` (the plain `goal_distance`)."""
        return None if self.goal is None else self.goal.weights

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        count = self._num_references() if self.task == "reach" else len(self.push_goals)
        index, torch_seed = reset_index(self.np_random, options, count, type(self).__name__)
        self.goal = None if self.task == "reach" else self.push_goals[int(index)]
        ref = self._begin(int(index) if self.goal is None else self.goal.index, torch_seed)
        ref.check_steps(self.n_past)
        self._ref, self._done, self._steps = ref, False, 0
        self._max_steps = len(ref) - self.n_past
        self._frames = [ref.frames[t].copy() for t in range(self.n_past)]
        self._conds = [ref.conds[t].copy() for t in range(self.n_past - 1)]
        self._position = ref.positions[self.n_past - 1].astype(np.float64)
        if self.goal is None:
            self._goal_frame, self._goal_position = ref.frames[-1], ref.positions[-1].astype(np.float64)
        else:
            self._goal_frame, self._goal_position = self.goal.goal_frame, self.goal.goal_position
        distance = float(goal_distance(self._frames[-1], self._goal_frame))
        return self._observation(), self._info(distance)

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
        distance = float(goal_distance(frame, self._goal_frame))
        terminated = self._success(distance)
        truncated = not terminated and self._steps >= self._max_steps
        self._done = terminated or truncated
        return self._observation(), -distance, terminated, truncated, self._info(distance)

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
        frames uint8 (..., 64, 64, 3) and/or predictor codes (..., g) -> costs (...), 0 at the goal.

        Args:
            name: the cost (the planner's `ModelDynamics` takes the same ones).
            readout: a `bair_world.readout.StateReadout` for "readout"/"mix"; default: the one saved with
                ``BairWorldGoal-v0``'s checkpoint (refused if trained on another model).
            encode: uint8 frames (N, 64, 64, 3) -> codes (N, g), the model's encoder (default: this env's
                model, ``BairWorldGoal-v0`` only).
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
            encode = lambda frames: core.encode(frames_to_float(frames))  # noqa: E731
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
        obs = {"image": self._frames[-1].copy(), "goal": self._goal_frame.copy(),
               "position": np.clip(self._position, box.low, box.high).astype(np.float32)}
        return {ROBOTICS_KEYS[k]: v for k, v in obs.items()} if self.robotics_keys else obs

    def _info(self, distance: float) -> dict[str, Any]:
        info = {"goal_distance": distance, "is_success": bool(self._success(distance)),
                "arm_distance_m": float(np.linalg.norm(self._position - self._goal_position)),
                "step": self._steps, "index": self._ref.index, "rollout_id": self._ref.rollout_id}
        if self.goal is not None:
            info["weighted_distance"] = self._weighted()
        info.update(self._extra_info())
        return info


def torch_as(codes):
    """Codes as a float32 torch tensor (a user may hand numpy)."""
    import torch

    return torch.as_tensor(np.asarray(codes, np.float32)) if not hasattr(codes, "detach") else codes.float()
