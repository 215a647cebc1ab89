"""``BairWorldGoal-v0``: goal reaching and pushing in the learned BAIR world model (the task:
`bair_world.envs.goal_task.GoalEnvBase`).

``PushWorldGoal-v0`` (`bair_world.envs.push_world_env`) is the same task over the true pushing world,
so a policy or planner tuned in the learned world is scored in the world it imitates
(`bair_world.envs.goal_eval.evaluate_goal_policy`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bair_world.data.batch import cond_of
from bair_world.envs.episodes import SINGLE_ROW, EpisodeBatch
from bair_world.envs.goal_task import GoalEnvBase
from bair_world.envs.options import WorldOptions
from bair_world.envs.references import Reference
from bair_world.goal_tasks import NUM_PUSH_GOALS, GoalTask
from bair_world.sim import SimConfig, arm_step


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
    `bair_world.envs.options.WorldOptions`); ``render_mode`` None or "rgb_array"; ``robotics_keys``
    (default False); ``task``: a name of `bair_world.goal_tasks.TASKS` ("reach", the default, as
    described here; "push": the goal is one of ``push_goals`` (`bair_world.push_goals.PushGoal`s;
    default: the first ``num_goals`` of `bair_world.push_goals.push_goals`), ``options["index"]`` picks
    it, and ``info`` adds ``weighted_distance``, the planner's cost) or a `bair_world.goal_tasks.GoalTask`;
    ``success_threshold`` (the task's image threshold; default the task's,
    `bair_world.goal_tasks.SUCCESS_THRESHOLD` for "reach").

    ``info``: ``goal_distance``, ``is_success``, ``arm_distance_m`` (end-effector to the goal's
    end-effector position, metres), ``step``, ``index``, ``rollout_id``.
    """

    def __init__(self, *, render_mode: str | None = None, success_threshold: float | None = None,
                 sim_config: SimConfig = SimConfig(), robotics_keys: bool = False, task: str | GoalTask = "reach",
                 push_goals=None, num_goals: int = NUM_PUSH_GOALS, **world: Any):
        self._setup(render_mode, sim_config, robotics_keys, task, success_threshold)
        self.episodes = EpisodeBatch(1, WorldOptions(**world))
        self.n_past = self.episodes.n_past
        self._prepare(self.episodes.reference_pool, push_goals, num_goals)

    def _num_references(self) -> int:
        return len(self.episodes.reference_pool)

    def _begin(self, index: int, torch_seed: int) -> Reference:
        self.episodes.reset_rows(SINGLE_ROW, np.array([index]), np.array([torch_seed]))
        return self.episodes.episode_references[0]

    def _advance(self, action: np.ndarray, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cond = cond_of(action, position)[None]  # (1, 7)
        result = self.episodes.step_rows(SINGLE_ROW, cond)
        return result.frames[0], arm_step(position, action, config=self.sim_config)
