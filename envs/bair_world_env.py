"""`BairWorldEnv` (``BairWorld-v0``): the learned BAIR world model as a Gymnasium environment."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from bair_world.envs.episodes import SINGLE_ROW, EpisodeBatch
from bair_world.envs.options import WorldOptions
from bair_world.envs.references import Reference, reset_index
from bair_world.sim.config import FRAME_RATE
from bair_world.envs.spaces import action_space, check_render_mode, observation_space

RENDER_FPS = FRAME_RATE  # BAIR was recorded at roughly 10 Hz; demo and rollout videos play at the same rate


class BairWorldEnv(gym.Env):
    """Push objects on a table with a robot arm inside a learned video world model of BAIR.

    ## Description

    An SVG-family action-conditioned video model (trained by ``bair-world train``) plays
    the world: each step it predicts the next 64x64 camera frame of the BAIR robot-pushing scene
    from the frames so far and the commanded action and end-effector position. Every episode
    replays against a recorded reference rollout, from the built-in physics-based pushing world by
    default or from a BAIR folder (``data_root``), and reports how closely the predicted frame
    matches the recorded one (``info["psnr"]``). Latent samples come from a torch generator seeded
    from ``self.np_random``: the same seed and actions give the same frames.

    ## Action Space

    ``Box(low, high, (7,), float32)`` in raw BAIR units: ``[dx, dy, c2, c3, x, y, z]`` = the 4-dim
    action (end-effector deltas and two small whole-number columns) followed by the 3-dim
    end-effector position (metres). ``low``/``high`` come from the checkpoint's training-data
    statistics (data min/max widened by 10% of the range, or mean +- 4 std). Values outside the box
    are clipped; NaN/inf or a wrong shape raise ``ValueError``. To act in [-1, 1], wrap with
    ``gymnasium.wrappers.RescaleAction``. Replaying the reference is
    ``np.concatenate([info["action"], info["position"]])``.

    ## Observation Space

    ``Box(0, 255, (64, 64, 3), uint8)``: the current RGB camera frame (the last context frame after
    ``reset``, the model's prediction after ``step``). Each observation is a fresh array.

    ## Rewards

    Always 0.0: this is the world, not a task. ``info["psnr"]`` (dB, frames in [0, 1]) measures the
    prediction against the reference frame at the same step.

    ## Starting State

    ``reset`` picks a reference rollout (uniformly with ``self.np_random``, or
    ``options={"index": i}``; ``options={"latent_seed": s}`` seeds the latent generator directly,
    as ``training/evaluate.py`` does with ``bair_world.seeding.latent_seed``), feeds its first ``n_past`` frames and ``n_past - 1`` conds to the
    model as context, and returns frame ``n_past - 1``. ``env.unwrapped.reference`` is the current
    reference (frames uint8 (T, 64, 64, 3), actions (T, 4), positions (T, 3)).

    ## Episode End

    Never terminates. Truncates when the reference runs out of frames: after ``T - n_past`` steps
    (28 for BAIR's 30 frames and ``n_past=2``; also the registered ``max_episode_steps``).

    ## Arguments

    ```python
    gym.make("BairWorld-v0", checkpoint=None, data_root=None, split="test",
             device="auto", render_mode=None, num_references=10_000, precision="float32", compile=False)
    ```

    * ``checkpoint``, ``data_root``/``split``, ``device``, ``num_references``,
      ``references``, ``precision``, ``compile``: the world options, each keyword a field of
      `bair_world.envs.options.WorldOptions` (documented there; the vector and goal envs take the same).
    * ``render_mode``: None or "rgb_array" (``render()`` returns the current frame).

    ``info`` after ``reset`` and ``step``: ``action`` (4,), ``position`` (3,) the reference's cond for
    the next transition, ``step`` steps taken, ``frame_index`` of the observation in the reference,
    ``index`` and ``rollout_id`` of the reference; after ``step`` also ``psnr``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": RENDER_FPS}

    def __init__(self, *, render_mode: str | None = None, **world: Any):
        check_render_mode(render_mode, self.metadata)
        self.render_mode = render_mode
        self.episodes = EpisodeBatch(1, WorldOptions(**world))
        self.observation_space = observation_space()
        self.action_space = action_space(self.episodes.low, self.episodes.high)
        self._obs: np.ndarray | None = None
        self._truncated = False

    @property
    def reference(self) -> Reference:
        """The current reference rollout (raises before the first reset)."""
        ref = self.episodes.episode_references[0]
        if ref is None:
            raise RuntimeError("no reference before reset()")
        return ref

    @property
    def n_past(self) -> int:
        """Context frames fed at reset."""
        return self.episodes.n_past

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        index, torch_seed = reset_index(self.np_random, options, len(self.episodes.reference_pool), "BairWorld-v0",
                                        latent_seed_option=True)
        obs = self.episodes.reset_rows(SINGLE_ROW, np.array([index]), np.array([torch_seed]))[0]
        self._obs, self._truncated = obs, False
        return obs.copy(), self.episodes.row_info(0)

    def step(self, action):
        if self._obs is None:
            raise RuntimeError("BairWorldEnv.step() called before reset()")
        if self._truncated:
            raise RuntimeError("BairWorldEnv.step() after the episode was truncated; call reset()")
        cond = self.episodes.check_actions(action, single=True)  # (1, 7) float32, clipped
        result = self.episodes.step_rows(SINGLE_ROW, cond)
        self._obs, self._truncated = result.frames[0], bool(result.truncated[0])
        return self._obs.copy(), 0.0, False, self._truncated, self.episodes.row_info(0, result.row_metrics(0))

    def render(self) -> np.ndarray | None:
        """The current frame (64, 64, 3) uint8 for ``render_mode="rgb_array"``; None otherwise."""
        if self.render_mode != "rgb_array":
            return None
        if self._obs is None:
            raise RuntimeError("render() before reset()")
        return self._obs.copy()
