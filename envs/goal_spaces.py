"""The goal envs' spaces (``BairWorldGoal-v0``, ``PushWorldGoal-v0``): a Dict observation of the
frame, the goal frame and the end-effector position, and the 4-dim action the pushing world executes."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from bair_world.data.batch import IMAGE_SIZE
from bair_world.sim import SimConfig, action_bounds, position_bounds

#: Margin (metres) of the position observation box around the pushing world's workspace.
POSITION_MARGIN = 0.05
#: The same observation under Gymnasium-Robotics' GoalEnv keys (``robotics_keys=True``), which
#: SB3's ``HerReplayBuffer`` needs: the goal-free state, the achieved frame and the goal frame.
ROBOTICS_KEYS = {"position": "observation", "image": "achieved_goal", "goal": "desired_goal"}


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
