"""`IntegratePosition`: ``BairWorld-v0`` (or ``PushWorld-v0``) driven by the 4-dim BAIR action alone.

The worlds' own action is 7-dim, ``[dx, dy, grip, z command, x, y, z]``: the action and the
end-effector position the model is conditioned on (`bair_world.envs.spaces.action_space`). Drawn at
random (``action_space.sample()``, a fresh Gaussian policy) that places the arm anywhere in the box
at every step and gives the two whole-number columns fractional values: inputs the model never saw.
This wrapper takes what a robot takes, the 4-dim action, and integrates the position as the arm
would (`bair_world.sim.arm_step`, the kinematics of the built-in pushing world, as the goal envs
do), so every input is in distribution.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from bair_world.sim import SimConfig, action_bounds, arm_step, quantise_action


class IntegratePosition(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """The 4-dim action ``[dx, dy, grip, z command]``; the end-effector position follows from it.

    ``reset`` starts the arm where the reference rollout's arm is (``info["position"]``, the position
    at the last context frame); each ``step(action)`` clips and rounds the action to what the pushing
    world executes (`bair_world.sim.quantise_action`), sends ``concat(action, position)`` to the
    wrapped env and moves the position by `bair_world.sim.arm_step`. ``info["arm_position"]`` is the
    position the next step will use; ``info["cond"]`` the 7-dim action that was sent.

    Action space: ``Box([-0.07, -0.07, 0, 0], [0.07, 0.07, 4, 2], (4,), float32)`` (dx, dy in metres;
    gripper closure 0..4; height command 0 hold / 1 lower / 2 lift), the limits of the pushing world.
    For [-1, 1] (SB3), add ``gymnasium.wrappers.RescaleAction`` on top. With a model trained on real
    BAIR the kinematics are the built-in world's approximation of the robot's.

    Example::

        env = IntegratePosition(gym.make("BairWorld-v0"))
        obs, info = env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        replay = info["action"]  # the reference's next 4-dim action

    Args:
        env: a world with the 7-dim action (``BairWorld-v0``, ``PushWorld-v0``), possibly wrapped.
        sim_config: the arm's kinematics and limits (default: the built-in world's).
    """

    def __init__(self, env: gym.Env, sim_config: SimConfig = SimConfig()):
        gym.utils.RecordConstructorArgs.__init__(self, sim_config=sim_config)  # gym.make can recreate it
        gym.Wrapper.__init__(self, env)
        if getattr(env.action_space, "shape", None) != (7,):
            raise ValueError(f"IntegratePosition wraps an env with the 7-dim action (action + position), "
                             f"got action space {env.action_space}")
        low, high = action_bounds(sim_config)
        self.action_space = spaces.Box(low, high, (4,), np.float32)
        self.sim_config = sim_config
        self._position: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._position = np.asarray(info["position"], dtype=np.float64).copy()
        return obs, {**info, "arm_position": self._position.astype(np.float32)}

    def step(self, action):
        if self._position is None:
            raise RuntimeError("IntegratePosition.step() called before reset()")
        try:
            arr = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"action must be numeric, got {type(action).__name__}: {exc}") from None
        if arr.shape != (4,):
            raise ValueError(f"action must have shape (4,) = [dx, dy, grip, z command], got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"action contains NaN or inf: {arr.tolist()}")
        executed = quantise_action(np.clip(arr, self.action_space.low, self.action_space.high), self.sim_config)
        cond = np.concatenate([executed, self._position]).astype(np.float32)  # cond_t = (action_t, position_t)
        obs, reward, terminated, truncated, info = self.env.step(cond)
        self._position = arm_step(self._position, executed, config=self.sim_config)
        return obs, reward, terminated, truncated, {**info, "cond": cond,
                                                    "arm_position": self._position.astype(np.float32)}
