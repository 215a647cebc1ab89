"""Gymnasium-Robotics' GoalEnv API for the goal envs (``robotics_keys=True``): ``compute_reward``,
``compute_terminated`` and ``compute_truncated``, batched over leading axes as HER relabelling calls them.

Present only with ``robotics_keys=True``: tools such as SB3's ``check_env`` take an env that has
``compute_reward`` for a GoalEnv and then require its keys. Goals are frames (..., 64, 64, 3);
(..., 3, 64, 64) is accepted too, because SB3 stores image observations channel-first
(``VecTransposeImage``) and hands them back so.
"""

from __future__ import annotations

import numpy as np

from bair_world.data.batch import IMAGE_SIZE
from bair_world.goal_tasks import GoalTask


def channels_last(frames) -> np.ndarray:
    """(..., 64, 64, 3) frames as given; (..., 3, 64, 64) moved to channels-last."""
    frames = np.asarray(frames)
    if frames.ndim >= 3 and frames.shape[-3] == 3 and frames.shape[-1] == IMAGE_SIZE:
        return np.moveaxis(frames, -3, -1)  # (..., 3, 64, 64) -> (..., 64, 64, 3)
    return frames


class RoboticsGoalAPI:
    """The GoalEnv methods of a goal env; reads its ``robotics_keys`` and asks its ``task``
    (`bair_world.goal_tasks.GoalTask`: ``reward``, ``terminated``)."""

    robotics_keys: bool
    task: GoalTask

    def _goal_api(self, method):
        if not self.robotics_keys:
            raise AttributeError(f"{method.__name__.lstrip('_')} exists with robotics_keys=True only")
        return method

    @property
    def compute_reward(self):
        """``compute_reward(achieved_goal, desired_goal, info)``: the task's reward, shape (...), the
        reward `step` gives (``info`` is unused: the reward depends on the frames only)."""
        return self._goal_api(self._compute_reward)

    @property
    def compute_terminated(self):
        """``compute_terminated(achieved_goal, desired_goal, info)``: success, the only termination (a task
        judged on the world's state reads the infos' ``is_success``: `GoalTask.terminated`)."""
        return self._goal_api(self._compute_terminated)

    @property
    def compute_truncated(self):
        """``compute_truncated(achieved_goal, desired_goal, info)``: all False (truncation counts steps)."""
        return self._goal_api(self._compute_truncated)

    def _compute_reward(self, achieved_goal, desired_goal, info) -> np.ndarray:
        return self.task.reward(channels_last(achieved_goal), channels_last(desired_goal))

    def _compute_terminated(self, achieved_goal, desired_goal, info) -> np.ndarray:
        return self.task.terminated(channels_last(achieved_goal), channels_last(desired_goal), info)

    def _compute_truncated(self, achieved_goal, desired_goal, info) -> np.ndarray:
        return np.zeros(np.shape(achieved_goal)[:-3], bool)

