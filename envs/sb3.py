"""`BairWorldSB3VecEnv`: Stable-Baselines3's `VecEnv` API over the native `BairWorldVectorEnv`.

SB3 expects same-step autoreset (a finished row is reset inside the same ``step_wait`` and its last
observation is passed as ``info["terminal_observation"]``); the native env resets on the next step.
The bridge resets finished rows at once with ``reset_mask``, so every row still costs one batched
model call per step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from bair_world.envs.vector import BairWorldVectorEnv


class BairWorldSB3VecEnv(VecEnv):
    """SB3 vector env over one `BairWorldVectorEnv` (whose rows share one world model).

    Args:
        venv: a `BairWorldVectorEnv`, e.g. ``gym.make_vec("BairWorld-v0", num_envs=8)``; or None to
            make one from ``num_envs`` and ``env_kwargs``.
        num_envs: rows when ``venv`` is None.
        **env_kwargs: `BairWorldVectorEnv` arguments when ``venv`` is None.

    Per-row ``info`` after a step: ``psnr``, the reference's next ``action``/``position``,
    ``step``, ``index``, ``rollout_id``; on the last step also ``terminal_observation`` and
    ``TimeLimit.truncated`` (episodes end by truncation, so SB3 bootstraps their value).
    Attribute access (`get_attr`, `set_attr`, `env_method`) reaches the shared vector env, so
    every index sees the same value.
    """

    def __init__(self, venv: gym.vector.VectorEnv | None = None, num_envs: int = 1, **env_kwargs: Any):
        if venv is None:
            venv = BairWorldVectorEnv(num_envs, **env_kwargs)
        elif env_kwargs:
            raise TypeError(f"env_kwargs {sorted(env_kwargs)} given together with a ready venv")
        if not isinstance(venv.unwrapped, BairWorldVectorEnv):
            raise TypeError(f"BairWorldSB3VecEnv needs a BairWorldVectorEnv, got {venv.unwrapped!r}")
        self.venv = venv
        self._actions: np.ndarray | None = None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    # -- VecEnv API ----------------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        options = self._options[0] if all(o == self._options[0] for o in self._options) else None
        try:  # seeds and options apply to this reset only, also when it refuses them
            if options is None:
                raise ValueError("BairWorldSB3VecEnv: set_options must give every env the same options")
            obs, infos = self.venv.reset(seed=seeds, options=dict(options) or None)
        finally:
            self._reset_seeds()
            self._reset_options()
        self.reset_infos = [self._row_info(infos, i) for i in range(self.num_envs)]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async()")
        actions, self._actions = self._actions, None
        obs, rewards, terminated, truncated, infos = self.venv.step(actions)
        dones = terminated | truncated
        row_infos = [self._row_info(infos, i) for i in range(self.num_envs)]
        if dones.any():
            for row in np.flatnonzero(dones):
                row_infos[row]["terminal_observation"] = obs[row].copy()
                row_infos[row]["TimeLimit.truncated"] = bool(truncated[row] and not terminated[row])
            obs, reset_infos = self.venv.reset(options={"reset_mask": dones})
            for row in np.flatnonzero(dones):
                self.reset_infos[row] = self._row_info(reset_infos, row)
        return obs, rewards.astype(np.float32), dones, row_infos

    def close(self) -> None:
        self.venv.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.venv.render()
        return [None] * self.num_envs if frames is None else list(frames)

    def get_attr(self, attr_name: str, indices: None | int | Iterable[int] = None) -> list[Any]:
        value = getattr(self.venv, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: None | int | Iterable[int] = None) -> None:
        if len(list(self._get_indices(indices))) != self.num_envs:
            raise ValueError(f"set_attr({attr_name!r}) on a subset of envs: the rows share one vector env")
        setattr(self.venv.unwrapped, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: None | int | Iterable[int] = None,
                   **method_kwargs) -> list[Any]:
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: None | int | Iterable[int] = None
                       ) -> list[bool]:
        return [False for _ in self._get_indices(indices)]  # rows are not gym.Env objects

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _row_info(infos: dict[str, Any], row: int) -> dict[str, Any]:
        """Row ``row`` of a Gymnasium vector info dict (keys whose ``_key`` mask is set)."""
        out = {}
        for key, value in infos.items():
            mask = infos.get(f"_{key}")
            if not key.startswith("_") and (mask is None or mask[row]):
                out[key] = value[row]
        return out
