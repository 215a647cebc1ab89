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

from bair_world.data.batch import cond_of
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
        executed = _executed(action, (4,), self.action_space.low, self.action_space.high, self.sim_config)
        cond = cond_of(executed, self._position)  # (7,)
        obs, reward, terminated, truncated, info = self.env.step(cond)
        self._position = arm_step(self._position, executed, config=self.sim_config)
        return obs, reward, terminated, truncated, {**info, "cond": cond,
                                                    "arm_position": self._position.astype(np.float32)}


def _executed(actions, shape: tuple[int, ...], low: np.ndarray, high: np.ndarray, config: SimConfig) -> np.ndarray:
    """Checked, clipped and quantised 4-dim actions of ``shape`` (what the pushing world executes)."""
    try:
        arr = np.asarray(actions, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"action must be numeric, got {type(actions).__name__}: {exc}") from None
    if arr.shape != shape:
        raise ValueError(f"action must have shape {shape}: [dx, dy, grip, z command]"
                         + (" per env" if len(shape) == 2 else "") + f", got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"action contains NaN or inf at {np.argwhere(~np.isfinite(arr))[0].tolist()}")
    return quantise_action(np.clip(arr, low, high), config)


class IntegratePositionVector(gym.vector.VectorWrapper):
    """`IntegratePosition` for the native vector env (``gym.make_vec("BairWorld-v0", ...)``): actions
    (num_envs, 4); each row's position starts at its reference's on every reset, next-step autoresets
    included (the wrapped env ignores a resetting row's action, and so does the position)."""

    def __init__(self, env: gym.vector.VectorEnv, sim_config: SimConfig = SimConfig()):
        super().__init__(env)
        if getattr(env.single_action_space, "shape", None) != (7,):
            raise ValueError(f"IntegratePositionVector wraps a vector env with the 7-dim action, "
                             f"got {env.single_action_space}")
        low, high = action_bounds(sim_config)
        self.single_action_space = spaces.Box(low, high, (4,), np.float32)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.sim_config = sim_config
        self._position = np.zeros((self.num_envs, 3))
        self._restarting = np.zeros(self.num_envs, dtype=bool)  # rows the next step resets (next-step autoreset)
        self._started = False

    def reset(self, *, seed=None, options: dict[str, Any] | None = None):
        obs, infos = self.env.reset(seed=seed, options=options)
        mask = (options or {}).get("reset_mask")
        rows = np.ones(self.num_envs, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        self._position[rows] = np.asarray(infos["position"], dtype=np.float64)[rows]
        self._restarting[rows] = False
        self._started = True
        return obs, {**infos, "arm_position": self._position.astype(np.float32)}

    def step(self, actions):
        if not self._started:
            raise RuntimeError("IntegratePositionVector.step() called before reset()")
        executed = _executed(actions, (self.num_envs, 4), self.single_action_space.low, self.single_action_space.high,
                             self.sim_config)  # (N, 4)
        conds = cond_of(executed, self._position)  # (N, 4) + (N, 3) -> (N, 7)
        obs, rewards, terminated, truncated, infos = self.env.step(conds)
        position = arm_step(self._position, executed, config=self.sim_config)  # (N, 3)
        restarted = self._restarting
        position[restarted] = np.asarray(infos["position"], dtype=np.float64)[restarted]  # a new episode's start
        self._position, self._restarting = position, np.asarray(terminated) | np.asarray(truncated)
        return obs, rewards, terminated, truncated, {**infos, "cond": conds,
                                                     "arm_position": self._position.astype(np.float32)}
