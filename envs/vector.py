"""`BairWorldVectorEnv`: N ``BairWorld-v0`` episodes stepped by one batched world-model call.

Made by ``gym.make_vec("BairWorld-v0", num_envs=N)`` (the registered ``vector_entry_point``).
Row i behaves exactly like a single `BairWorldEnv` reset with seed ``seed + i`` (same reference
choice, same latent samples), up to float rounding of batched convolutions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from bair_world.envs.bair_world_env import RENDER_FPS
from bair_world.envs.episodes import EpisodeBatch
from bair_world.envs.options import WorldOptions
from bair_world.envs.references import check_index
from bair_world.envs.spaces import action_space, check_latent_seed, check_render_mode, observation_space

_ROW_KEYS = ("action", "position", "step", "frame_index", "index", "rollout_id")


class BairWorldVectorEnv(VectorEnv):
    """A native vector env over one `WorldModel` (see `BairWorldEnv` for the task and spaces).

    Autoreset is next-step (``metadata["autoreset_mode"]``): the ``step`` after a row truncates
    resets that row (its action is ignored) and returns the new episode's first observation with
    reward 0 and ``terminated = truncated = False``. ``reset(options={"reset_mask": mask})`` resets
    only the rows where the (num_envs,) bool ``mask`` is True; ``options={"index": i}`` picks the
    reference and ``options={"latent_seed": s}`` the latent generator's seed (each an int for every
    reset row, or one per reset row).

    Args:
        num_envs: parallel episodes.
        **world: `bair_world.envs.options.WorldOptions` fields as keywords, as `BairWorldEnv` (a
            reduced ``precision`` pays off most here: one big batched model call; ``compile`` pays
            off little at large N on CPU, where the convolutions dominate).
        render_mode: None or "rgb_array" (``render()`` returns a tuple of the rows' frames).
        max_episode_steps: also truncate a row after this many steps (``gym.make_vec`` passes the
            registered 28, what `gymnasium.wrappers.TimeLimit` does for the single env).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": RENDER_FPS,
                "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, *, render_mode: str | None = None, max_episode_steps: int | None = None,
                 **world: Any):
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps}")
        self.max_episode_steps = max_episode_steps
        check_render_mode(render_mode, self.metadata)
        self.episodes = EpisodeBatch(num_envs, WorldOptions(**world))
        self.num_envs = self.episodes.num_envs
        self.render_mode = render_mode
        self.single_observation_space = observation_space()
        self.single_action_space = action_space(self.episodes.low, self.episodes.high)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._row_rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._obs = np.zeros((self.num_envs, *self.single_observation_space.shape), np.uint8)
        self._autoreset = np.zeros(self.num_envs, dtype=bool)

    # -- reset ---------------------------------------------------------------------------------
    def _seed_rows(self, rows: np.ndarray, seed: int | list | None) -> None:
        if seed is None:
            seeds = [None] * len(rows)
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + int(r) for r in rows]  # Gymnasium's convention: env i gets seed + i
        else:
            seeds = list(seed)
            if len(seeds) == self.num_envs and len(rows) != self.num_envs:
                seeds = [seeds[r] for r in rows]
            if len(seeds) != len(rows):
                raise ValueError(f"got {len(seeds)} seeds for {len(rows)} envs to reset")
        for row, s in zip(rows, seeds):
            if s is not None or self._row_rngs[row] is None:
                self._row_rngs[row], _ = seeding.np_random(s)

    def _reset_rows(self, rows: np.ndarray, index: Any = None, latent_seed: Any = None) -> None:
        n_refs = len(self.episodes.references)
        if index is None:
            indices = [None] * len(rows)
        else:
            given = np.asarray(index, dtype=object)
            if given.ndim > 1 or (given.ndim == 1 and len(given) != len(rows)):
                raise ValueError(f"options['index'] must be one index or a list of one per reset env ({len(rows)}), "
                                 f"got {len(given) if given.ndim == 1 else given.shape} values")
            indices = np.broadcast_to(given, (len(rows),)).tolist()
        if latent_seed is None:
            latents = [None] * len(rows)
        else:
            latents = np.broadcast_to(np.asarray(latent_seed, dtype=object), (len(rows),)).tolist()
        picks, torch_seeds = [], []
        for row, idx, lat in zip(rows, indices, latents):  # same draws, same order as BairWorldEnv.reset
            rng = self._row_rngs[row]
            picks.append(int(rng.integers(n_refs)) if idx is None else check_index(idx, n_refs))
            torch_seeds.append(int(rng.integers(2**63 - 1)))
            if lat is not None:
                torch_seeds[-1] = check_latent_seed(lat)
        self._obs[rows] = self.episodes.reset_rows(rows, np.array(picks), np.array(torch_seeds, dtype=np.int64))
        self._autoreset[rows] = False

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed if seed is None or isinstance(seed, (int, np.integer)) else None)
        options = options or {}
        unknown = sorted(set(options) - {"index", "latent_seed", "reset_mask"})
        if unknown:
            raise ValueError(f"unknown reset options {unknown}; accepted: 'index', 'latent_seed', 'reset_mask'")
        mask = options.get("reset_mask")
        if mask is None:
            rows = np.arange(self.num_envs)
        else:
            mask = np.asarray(mask)
            if mask.dtype != np.bool_ or mask.shape != (self.num_envs,):
                raise ValueError(f"reset_mask must be a bool array of shape ({self.num_envs},), "
                                 f"got {mask.dtype} {mask.shape}")
            if not self.episodes.started and not mask.all():
                raise RuntimeError("the first reset must reset every env (no reset_mask, or all True)")
            rows = np.flatnonzero(mask)
        self._seed_rows(rows, seed)
        if len(rows):
            self._reset_rows(rows, options.get("index"), options.get("latent_seed"))
        return self._obs.copy(), self._infos(rows)

    # -- step ----------------------------------------------------------------------------------
    def step(self, actions):
        if not self.episodes.started:
            raise RuntimeError("BairWorldVectorEnv.step() called before reset()")
        conds = self.episodes.check_actions(actions, single=False)  # (N, 7), clipped
        restart = np.flatnonzero(self._autoreset)
        live = np.flatnonzero(~self._autoreset)
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        psnr = np.zeros(self.num_envs, dtype=np.float64)
        if len(restart):
            self._reset_rows(restart)
        if len(live):
            frames, psnr[live], truncated[live] = self.episodes.step_rows(live, conds[live])
            self._obs[live] = frames
            if self.max_episode_steps is not None:
                steps = self.episodes.t[live] - (self.episodes.n_past - 1)
                truncated[live] |= steps >= self.max_episode_steps
        self._autoreset = truncated.copy()
        infos = self._infos(np.arange(self.num_envs))
        stepped = np.zeros(self.num_envs, dtype=bool)
        stepped[live] = True
        infos["psnr"], infos["_psnr"] = psnr, stepped
        return self._obs.copy(), rewards, terminated, truncated, infos

    def _infos(self, rows: np.ndarray) -> dict[str, Any]:
        """Vector infos (arrays over all rows plus ``_key`` masks) for ``rows``."""
        mask = np.zeros(self.num_envs, dtype=bool)
        mask[rows] = True
        infos: dict[str, Any] = {
            "action": np.zeros((self.num_envs, 4), np.float32), "position": np.zeros((self.num_envs, 3), np.float32),
            "step": np.zeros(self.num_envs, np.int64), "frame_index": np.zeros(self.num_envs, np.int64),
            "index": np.zeros(self.num_envs, np.int64), "rollout_id": np.full(self.num_envs, None, dtype=object),
        }
        for row in rows:
            for key, value in self.episodes.row_info(int(row)).items():
                infos[key][row] = value
        for key in _ROW_KEYS:
            infos[f"_{key}"] = mask.copy()
        return infos

    # -- misc ----------------------------------------------------------------------------------
    def render(self) -> tuple[np.ndarray, ...] | None:
        """The rows' current frames, each (64, 64, 3) uint8, for ``render_mode="rgb_array"``."""
        if self.render_mode != "rgb_array":
            return None
        return tuple(self._obs.copy())

    @property
    def references(self):
        """The rows' current reference rollouts (None for a row never reset)."""
        return list(self.episodes.refs)
