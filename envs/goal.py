"""Goal-reaching over the bair-world: ``BairWorldGoal-v0`` (learned world) and the shared goal-task base.

``PushWorldGoal-v0`` (`bair_world.envs.push_world_env`) is the same task over the true pushing world,
so a policy or planner tuned in the learned world is scored in the world it imitates
(`bair_world.envs.goal_eval.evaluate_goal_policy`).
"""

from __future__ import annotations

import abc
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from bair_world.data.batch import IMAGE_SIZE, cond_of
from bair_world.envs.bair_world_env import RENDER_FPS
from bair_world.envs.episodes import EpisodeBatch
from bair_world.envs.options import WorldOptions
from bair_world.envs.references import Reference, reset_index
from bair_world.envs.spaces import check_render_mode
from bair_world.metrics import goal_distance
from bair_world.planning import PlanContext, weighted_distance
from bair_world.sim import SimConfig, action_bounds, arm_step, position_bounds, quantise_action

#: Default success threshold on `bair_world.metrics.goal_distance` (RMSE of 16x16 area means in
#: [0, 1]). Measured on the built-in references: the frame one step before the goal lies at
#: 0.01-0.06 from it, the start at 0.05-0.09, 28 random actions end at 0.05-0.10.
SUCCESS_THRESHOLD = 0.025
#: Margin (metres) of the position observation box around the pushing world's workspace.
POSITION_MARGIN = 0.05
#: The same observation under Gymnasium-Robotics' GoalEnv keys (``robotics_keys=True``), which
#: SB3's ``HerReplayBuffer`` needs: the goal-free state, the achieved frame and the goal frame.
ROBOTICS_KEYS = {"position": "observation", "image": "achieved_goal", "goal": "desired_goal"}
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


def goal_observation_space(config: SimConfig = SimConfig(), robotics_keys: bool = False) -> spaces.Dict:
    """Dict(image, goal: Box(0, 255, (64, 64, 3), uint8), position: Box((3,), float32) metres).

    With ``robotics_keys`` the keys are renamed by `ROBOTICS_KEYS` (position -> observation,
    image -> achieved_goal, goal -> desired_goal); the boxes are the same.
    """
    lo, hi = position_bounds(config)
    lo, hi = lo - POSITION_MARGIN, hi + POSITION_MARGIN
    frame = spaces.Box(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    parts = {"image": frame, "goal": frame,
             "position": spaces.Box(lo.astype(np.float32), hi.astype(np.float32), (3,), np.float32)}
    return spaces.Dict({ROBOTICS_KEYS[k]: v for k, v in parts.items()} if robotics_keys else parts)


def goal_action_space(config: SimConfig = SimConfig()) -> spaces.Box:
    """Box((4,), float32): [dx, dy, grip, z command], the limits the pushing world executes."""
    low, high = action_bounds(config)
    return spaces.Box(low, high, (4,), np.float32)


def _channels_last(frames) -> np.ndarray:
    """(..., 64, 64, 3) frames as given; (..., 3, 64, 64) moved to channels-last."""
    frames = np.asarray(frames)
    if frames.ndim >= 3 and frames.shape[-3] == 3 and frames.shape[-1] == IMAGE_SIZE:
        return np.moveaxis(frames, -3, -1)  # (..., 3, 64, 64) -> (..., 64, 64, 3)
    return frames


class GoalEnvBase(gym.Env, abc.ABC):
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
        if not np.isfinite(success_threshold) or success_threshold < 0:
            raise ValueError(f"success_threshold must be a finite number >= 0, got {success_threshold}")
        self.render_mode, self.success_threshold, self.sim_config = render_mode, float(success_threshold), sim_config
        self.robotics_keys = bool(robotics_keys)
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

    def plan_context(self) -> PlanContext:
        """This env's state as a one-env `bair_world.planning.PlanContext`."""
        frames, conds = self.history
        weights = None if self.goal is None else self.goal.weights[None]
        return PlanContext([frames], [conds], self._position[None].copy(), self._goal_frame[None],
                           np.array([self._max_steps - self._steps]), getattr(self, "worlds", None), weights,
                           np.array([self._ref.index]))

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
        cond = cond_of(action, self._position)  # (7,)
        frame, self._position = self._advance(action, self._position.copy())
        self._frames.append(frame)
        self._conds.append(cond)
        self._steps += 1
        distance = float(goal_distance(frame, self._goal_frame))
        terminated = self._success(distance)
        truncated = not terminated and self._steps >= self._max_steps
        self._done = terminated or truncated
        return self._observation(), -distance, terminated, truncated, self._info(distance)

    # -- Gymnasium-Robotics GoalEnv API (batched over leading axes, as HER relabelling calls it) --
    # Present only with robotics_keys=True: tools such as SB3's check_env take an env that has
    # compute_reward for a GoalEnv and then require its keys. Goals are frames (..., 64, 64, 3);
    # (..., 3, 64, 64) is accepted too, because SB3 stores image observations channel-first
    # (VecTransposeImage) and hands them back so.
    def _goal_api(self, method):
        if not self.robotics_keys:
            raise AttributeError(f"{method.__name__.lstrip('_')} exists with robotics_keys=True only")
        return method

    @property
    def compute_reward(self):
        """``compute_reward(achieved_goal, desired_goal, info)``: ``-goal_distance``, shape (...), the
        reward `step` gives (``info`` is unused: the reward depends on the frames only)."""
        return self._goal_api(self._compute_reward)

    @property
    def compute_terminated(self):
        """``compute_terminated(achieved_goal, desired_goal, info)``: success, the only termination."""
        return self._goal_api(self._compute_terminated)

    @property
    def compute_truncated(self):
        """``compute_truncated(achieved_goal, desired_goal, info)``: all False (truncation counts steps)."""
        return self._goal_api(self._compute_truncated)

    def _compute_reward(self, achieved_goal, desired_goal, info) -> np.ndarray:
        return -goal_distance(_channels_last(achieved_goal), _channels_last(desired_goal))

    def _compute_terminated(self, achieved_goal, desired_goal, info) -> np.ndarray:
        if self.task == "push":  # judged on the state: the infos' is_success (False without infos)
            infos = np.atleast_1d(np.asarray(info, dtype=object)) if info is not None else None
            shape = np.shape(achieved_goal)[:-3]
            if infos is None or infos.size != int(np.prod(shape)):
                return np.zeros(shape, bool)
            return np.array([bool(i["is_success"]) for i in infos.ravel()]).reshape(shape)
        return -self._compute_reward(achieved_goal, desired_goal, info) <= self.success_threshold

    def _compute_truncated(self, achieved_goal, desired_goal, info) -> np.ndarray:
        return np.zeros(np.shape(achieved_goal)[:-3], bool)

    def render(self) -> np.ndarray | None:
        """The current frame (64, 64, 3) uint8 for ``render_mode="rgb_array"``; None otherwise."""
        if self.render_mode != "rgb_array":
            return None
        if self._ref is None:
            raise RuntimeError("render() before reset()")
        return self._frames[-1].copy()

    # -- helpers -------------------------------------------------------------------------------
    def _checked(self, action) -> np.ndarray:
        try:
            arr = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"action must be numeric, got {type(action).__name__}: {exc}") from None
        if arr.shape != (4,):
            raise ValueError(f"action must have shape (4,) = [dx, dy, grip, z command], got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"action contains NaN or inf: {arr.tolist()}")
        low, high = self.action_space.low.astype(np.float64), self.action_space.high.astype(np.float64)
        return quantise_action(np.clip(arr, low, high), self.sim_config)

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


class BairWorldGoalEnv(GoalEnvBase):
    """Reach a goal frame by pushing in the learned BAIR world model (``BairWorldGoal-v0``).

    ## Description

    The world of ``BairWorld-v0`` with a task: make the camera image match a goal image. The goal
    is the final frame of the episode's reference rollout, so it is reachable (replaying the
    reference's actions gets there). The agent chooses only the 4-dim action; the end-effector
    position fed to the model follows from the action through the pushing world's arm kinematics
    (`bair_world.sim.arm_step`), exactly as in ``PushWorldGoal-v0``, so a policy cannot feed the
    model positions the arm could not have.

    ## Action Space

    ``Box([-0.07, -0.07, 0, 0], [0.07, 0.07, 4, 2], (4,), float32)`` = [dx, dy, grip, z command] in
    BAIR units; values outside are clipped, columns 2-3 rounded (what the pushing world executes).
    A wrong shape or NaN/inf raises ``ValueError``.

    ## Observation Space

    ``Dict(image=(64, 64, 3) uint8, goal=(64, 64, 3) uint8, position=(3,) float32 metres)``. With
    ``robotics_keys=True`` the same under Gymnasium-Robotics' GoalEnv keys: ``observation``
    (position), ``achieved_goal`` (image), ``desired_goal`` (goal), with ``compute_reward``,
    ``compute_terminated`` and ``compute_truncated``, so SB3's ``HerReplayBuffer`` can relabel goals.

    ## Rewards

    Dense: ``-goal_distance(frame, goal)`` each step, with `bair_world.metrics.goal_distance` =
    RMSE between the predicted and the goal frame after 4x4 area averaging (16x16, intensities in
    [0, 1]). Averaging first makes the distance tolerant of the model's blur and of one-pixel
    shifts, which raw pixel MSE punishes as hard as a misplaced object; it still sees the arm and
    the toys (each covers several 4x4 cells). It is also the planner's cost, so RL and planning
    optimise the same objective. Negative per step, so reaching the goal sooner pays more.

    ## Episode End

    Terminates on success (``goal_distance <= success_threshold``, ``info["is_success"]``),
    truncates after ``T - n_past`` steps (28 for 30-frame references).

    ## Arguments

    The world options as ``BairWorld-v0`` (keywords, the fields of
    `bair_world.envs.options.WorldOptions`); ``success_threshold`` (default `SUCCESS_THRESHOLD`;
    `PUSH_IMAGE_THRESHOLD` on the weighted distance for ``task="push"``); ``render_mode`` None or
    "rgb_array"; ``robotics_keys`` (default False); ``task`` "reach" (default) or "push": the goal is
    then one of ``push_goals`` (`bair_world.envs.push_goals.PushGoal`s; default: the first
    ``num_goals`` of `bair_world.envs.push_goals.push_goals`), ``options["index"]`` picks it, and
    ``info`` adds ``weighted_distance`` (the planner's cost, `bair_world.planning.weighted_distance`).

    ``info``: ``goal_distance``, ``is_success``, ``arm_distance_m`` (end-effector to the goal's
    end-effector position, metres), ``step``, ``index``, ``rollout_id``.
    """

    def __init__(self, *, render_mode: str | None = None, success_threshold: float | None = None,
                 sim_config: SimConfig = SimConfig(), robotics_keys: bool = False, task: str = "reach",
                 push_goals=None, num_goals: int = NUM_PUSH_GOALS, **world: Any):
        self._setup(render_mode, success_threshold, sim_config, robotics_keys, task)
        self.episodes = EpisodeBatch(1, WorldOptions(**world))
        self.n_past = self.episodes.n_past
        self._load_push_goals(self.episodes.references, push_goals, num_goals)

    def _num_references(self) -> int:
        return len(self.episodes.references)

    def _begin(self, index: int, torch_seed: int) -> Reference:
        self.episodes.reset_rows(np.zeros(1, np.int64), np.array([index]), np.array([torch_seed]))
        return self.episodes.refs[0]

    def _advance(self, action: np.ndarray, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cond = cond_of(action, position)[None]  # (1, 7)
        frames, _, _ = self.episodes.step_rows(np.zeros(1, np.int64), cond)
        return frames[0], arm_step(position, action, config=self.sim_config)
