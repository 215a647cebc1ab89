"""`replay_psnr`: how well the world model re-predicts a reference when fed the reference's own actions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np


def replay_psnr(env_or_checkpoint: gym.Env | str | Path | None, index: int = 0, seed: int | None = 0,
                **env_kwargs: Any) -> np.ndarray:
    """Replay reference rollout ``index`` with its recorded actions and positions.

    Args:
        env_or_checkpoint: a ``BairWorld-v0`` env (possibly wrapped), or a checkpoint directory
            (None: the bundled one) to make one from.
        index: the reference rollout to replay.
        seed: reset seed (fixes the latent samples); None for fresh randomness.
        **env_kwargs: passed to `BairWorldEnv` when a checkpoint is given (``data_root``, ``split``,
            ``n_past``, ``device``, ...).

    Returns:
        (T - n_past,) float64 PSNR in dB of each predicted frame against the recorded one.
    """
    from bair_world.envs.bair_world_env import BairWorldEnv

    if isinstance(env_or_checkpoint, gym.Env):
        env, owned = env_or_checkpoint, False
        if not isinstance(env.unwrapped, BairWorldEnv):
            raise TypeError(f"replay_psnr needs a BairWorld-v0 env, got {env.unwrapped!r}")
    else:
        if env_kwargs.get("render_mode") is not None:
            raise ValueError("replay_psnr makes its env without rendering; pass an env to render")
        env, owned = BairWorldEnv(checkpoint=env_or_checkpoint, **env_kwargs), True
    try:
        _, info = env.reset(seed=seed, options={"index": int(index)})
        curve, truncated, terminated = [], False, False
        while not (truncated or terminated):
            action = np.concatenate([info["action"], info["position"]])  # the reference's cond_t
            _, _, terminated, truncated, info = env.step(action)
            curve.append(info["psnr"])
        return np.asarray(curve, dtype=np.float64)
    finally:
        if owned:
            env.close()
