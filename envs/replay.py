"""Replay references' own actions through ``BairWorld-v0``: the env's answer to "how good is the model".

`replay_psnr` (one env) and `replay_references` (the native vector env, one batched model call per
step) seed each episode's latents with `bair_world.seeding.latent_seed` (seed, reference index), the
rule ``training/evaluate.py`` uses per sequence: on the same data folder with the same seed and
``n_past``, the first ``n_future`` steps give the PSNR evaluation reports (up to float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from bair_world.data.batch import cond_of
from bair_world.metrics import psnr as psnr_metric
from bair_world.seeding import latent_seed


def _check_steps(max_steps: int | None) -> None:
    if max_steps is not None and (isinstance(max_steps, bool) or int(max_steps) != max_steps or max_steps < 1):
        raise ValueError(f"max_steps must be an int >= 1 or None, got {max_steps!r}")


def replay_psnr(env_or_checkpoint: gym.Env | str | Path | None, index: int = 0, seed: int | None = 0,
                max_steps: int | None = None, **env_kwargs: Any) -> np.ndarray:
    """Replay reference rollout ``index`` with its recorded actions and positions.

    Args:
        env_or_checkpoint: a ``BairWorld-v0`` env (possibly wrapped), or a checkpoint directory
            (None: the bundled one) to make one from.
        index: the reference rollout to replay.
        seed: evaluation seed: the env is reset with ``seed`` and its latents seeded with
            ``latent_seed(seed, index)`` (as ``evaluate.py --seed`` does for sequence ``index``);
            None for fresh randomness.
        max_steps: stop after this many predicted frames (None: until the reference runs out).
        **env_kwargs: passed to `BairWorldEnv` when a checkpoint is given (``data_root``, ``split``,
            ``device``, ...).

    Returns:
        (steps,) float64 PSNR in dB of each predicted frame against the recorded one.
    """
    from bair_world.envs.bair_world_env import BairWorldEnv

    _check_steps(max_steps)
    if isinstance(env_or_checkpoint, gym.Env):
        env, owned = env_or_checkpoint, False
        if not isinstance(env.unwrapped, BairWorldEnv):
            raise TypeError(f"replay_psnr needs a BairWorld-v0 env, got {env.unwrapped!r}")
    else:
        if env_kwargs.get("render_mode") is not None:
            raise ValueError("replay_psnr makes its env without rendering; pass an env to render")
        env, owned = BairWorldEnv(checkpoint=env_or_checkpoint, **env_kwargs), True
    try:
        options: dict[str, Any] = {"index": int(index)}
        if seed is not None:
            options["latent_seed"] = latent_seed(seed, index)
        _, info = env.reset(seed=seed, options=options)
        curve, truncated, terminated = [], False, False
        while not (truncated or terminated) and (max_steps is None or len(curve) < max_steps):
            action = cond_of(info["action"], info["position"])  # the reference's cond_t
            _, _, terminated, truncated, info = env.step(action)
            curve.append(info["psnr"])
        return np.asarray(curve, dtype=np.float64)
    finally:
        if owned:
            env.close()


@dataclass(frozen=True)
class Replay:
    """What `replay_references` recorded.

    Attributes:
        psnr: (N, S) model PSNR (dB) of each predicted frame against the recorded one.
        baseline: (N, S) PSNR of the copy-last-context-frame baseline on the same frames.
        frames: (N, n_past + S, 64, 64, 3) uint8: the context frames, then the model's predictions.
        references: the N replayed reference rollouts.
        n_past: context frames per episode.
        seed: the evaluation seed used (None: fresh randomness).
    """

    psnr: np.ndarray
    baseline: np.ndarray
    frames: np.ndarray
    references: list
    n_past: int
    seed: int | None

    @property
    def recorded(self) -> np.ndarray:
        """(N, n_past + S, 64, 64, 3) uint8: the references' frames over the replayed span."""
        span = self.frames.shape[1]
        return np.stack([ref.frames[:span] for ref in self.references])


def replay_references(vec_env: gym.vector.VectorEnv, indices=None, seed: int | None = 0,
                      max_steps: int | None = None) -> Replay:
    """Replay N references' own actions in a ``BairWorld-v0`` vector env, one row per reference.

    Args:
        vec_env: from ``gym.make_vec("BairWorld-v0", num_envs=N, vectorization_mode="vector_entry_point")``.
        indices: N reference indices (None: 0 .. N-1).
        seed: evaluation seed (row i's latents: ``latent_seed(seed, indices[i])``); None: fresh.
        max_steps: predicted frames per episode (None: until the shortest reference runs out).

    Returns:
        a `Replay`; row i equals ``replay_psnr(env, indices[i], seed)`` up to batched float rounding.
    """
    from bair_world.envs.vector import BairWorldVectorEnv

    _check_steps(max_steps)
    if not isinstance(vec_env.unwrapped, BairWorldVectorEnv):
        raise TypeError(f"replay_references needs a BairWorld-v0 vector env, got {vec_env.unwrapped!r}")
    n = vec_env.num_envs
    indices = list(range(n)) if indices is None else [int(i) for i in indices]
    if len(indices) != n:
        raise ValueError(f"{len(indices)} reference indices for {n} envs")
    options: dict[str, Any] = {"index": np.asarray(indices)}
    if seed is not None:
        options["latent_seed"] = [latent_seed(seed, i) for i in indices]
    _, infos = vec_env.reset(seed=seed, options=options)
    core = vec_env.unwrapped
    refs, n_past = core.episode_references, core.episodes.n_past
    steps = min(len(ref) for ref in refs) - n_past  # no row truncates (and autoresets) before the end
    steps = steps if max_steps is None else min(steps, int(max_steps))
    frames = [np.stack([ref.frames[:n_past] for ref in refs])]  # (N, n_past, 64, 64, 3)
    curve = []
    for _ in range(steps):
        actions = cond_of(infos["action"], infos["position"])  # (N, 7) the references' cond_t
        obs, _, _, _, infos = vec_env.step(actions)
        frames.append(obs[:, None])  # (N, 64, 64, 3) -> (N, 1, 64, 64, 3)
        curve.append(np.asarray(infos["psnr"], dtype=np.float64))
    recorded = np.stack([ref.frames[n_past:n_past + steps] for ref in refs])  # (N, S, 64, 64, 3)
    last = np.stack([ref.frames[n_past - 1] for ref in refs])[:, None]  # (N, 1, 64, 64, 3)
    baseline = psnr_metric(np.broadcast_to(last, recorded.shape), recorded, channel_axis=-1).reshape(n, steps)
    return Replay(psnr=np.stack(curve, axis=1) if curve else np.zeros((n, 0)), baseline=baseline,
                  frames=np.concatenate(frames, axis=1), references=refs, n_past=n_past, seed=seed)
