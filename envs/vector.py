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
from bair_world.envs.episodes import STEP_METRICS, EpisodeBatch
from bair_world.envs.options import WorldOptions, check_int_option
from bair_world.envs.references import check_reset_options, pick_reference
from bair_world.envs.spaces import action_space, check_render_mode, observation_space

#: The vector env's reset options: the single env's, and which rows to reset.
_RESET_OPTIONS = ("index", "latent_seed", "reset_mask")


def _scatter(infos: dict[str, np.ndarray], rows: np.ndarray, columns: dict[str, np.ndarray],
             num_envs: int) -> dict[str, np.ndarray]:
    """Add ``columns`` (each (k, ...) over ``rows``) to vector ``infos`` in Gymnasium's layout (what
    ``VectorEnv._add_info`` builds row by row): an array over all ``num_envs`` rows (zeros, None for
    objects, where a row has no value) and a ``_key`` bool mask of the rows that have one."""
    for key, column in columns.items():
        full = (np.full(num_envs, None, dtype=object) if column.dtype == object
                else np.zeros((num_envs, *column.shape[1:]), column.dtype))
        full[rows] = column
        mask = np.zeros(num_envs, dtype=bool)
        mask[rows] = True
        infos[key], infos[f"_{key}"] = full, mask
    return infos


def _per_row(name: str, value: Any, count: int) -> list:
    """Reset option ``name`` for ``count`` rows: None for all, one value for all, or one per row."""
    if value is None:
        return [None] * count
    given = np.asarray(value, dtype=object)
    if given.ndim > 1 or (given.ndim == 1 and len(given) != count):
        raise ValueError(f"options[{name!r}] must be one {name} or a list of one per reset env ({count}), "
                         f"got {len(given) if given.ndim == 1 else given.shape} values")
    return np.broadcast_to(given, (count,)).tolist()


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
        if max_episode_steps is not None:
            check_int_option("max_episode_steps", max_episode_steps, 1)
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
        """Reset ``rows``, each by `pick_reference` with its own generator and its share of the
        options (the single env's rule, the same draws in the same order)."""
        indices, latents = _per_row("index", index, len(rows)), _per_row("latent_seed", latent_seed, len(rows))
        pool = len(self.episodes.reference_pool)
        picks = [pick_reference(self._row_rngs[row], pool, idx, lat) for row, idx, lat in zip(rows, indices, latents)]
        self._obs[rows] = self.episodes.reset_rows(rows, np.array([p[0] for p in picks]),
                                                   np.array([p[1] for p in picks], dtype=np.int64))
        self._autoreset[rows] = False

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed if seed is None or isinstance(seed, (int, np.integer)) else None)
        options = check_reset_options(options, _RESET_OPTIONS, "BairWorld-v0's vector env")
        rows = self._mask_rows(options.get("reset_mask"))
        self._seed_rows(rows, seed)
        if len(rows):
            self._reset_rows(rows, options.get("index"), options.get("latent_seed"))
        return self._obs.copy(), self._infos(rows)

    def _mask_rows(self, mask: Any) -> np.ndarray:
        """The rows a ``reset_mask`` (None: every row) selects."""
        if mask is None:
            return np.arange(self.num_envs)
        mask = np.asarray(mask)
        if mask.dtype != np.bool_ or mask.shape != (self.num_envs,):
            raise ValueError(f"reset_mask must be a bool array of shape ({self.num_envs},), "
                             f"got {mask.dtype} {mask.shape}")
        if not self.episodes.started and not mask.all():
            raise RuntimeError("the first reset must reset every env (no reset_mask, or all True)")
        return np.flatnonzero(mask)

    # -- step ----------------------------------------------------------------------------------
    def step(self, actions):
        if not self.episodes.started:
            raise RuntimeError("BairWorldVectorEnv.step() called before reset()")
        conds = self.episodes.check_actions(actions, single=False)  # (N, 7) float32, clipped
        restart = np.flatnonzero(self._autoreset)
        live = np.flatnonzero(~self._autoreset)
        truncated = np.zeros(self.num_envs, dtype=bool)
        metrics = {name: np.zeros(0, np.float64) for name in STEP_METRICS}  # also when every row restarted
        if len(restart):
            self._reset_rows(restart)
        if len(live):
            result = self.episodes.step_rows(live, conds if len(live) == self.num_envs else conds[live])
            if len(live) == self.num_envs:  # the step's frames are a fresh array: keep them, no copy
                self._obs = result.frames
            else:
                self._obs[live] = result.frames
            truncated[live], metrics = result.truncated, result.metrics
            if self.max_episode_steps is not None:
                steps = self.episodes.t[live] - (self.episodes.n_past - 1)
                truncated[live] |= steps >= self.max_episode_steps
        self._autoreset = truncated.copy()
        infos = self._infos(np.arange(self.num_envs))
        _scatter(infos, live, metrics, self.num_envs)  # the step's measures: the rows that stepped
        rewards, terminated = np.zeros(self.num_envs, dtype=np.float64), np.zeros(self.num_envs, dtype=bool)
        return self._obs.copy(), rewards, terminated, truncated, infos

    def _infos(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Vector infos of ``rows``: their `EpisodeBatch.infos` columns, each an array over all rows
        plus its ``_key`` mask."""
        return _scatter({}, rows, self.episodes.infos(rows), self.num_envs)

    # -- misc ----------------------------------------------------------------------------------
    def render(self) -> tuple[np.ndarray, ...] | None:
        """The rows' current frames, each (64, 64, 3) uint8, for ``render_mode="rgb_array"``."""
        if self.render_mode != "rgb_array":
            return None
        return tuple(self._obs.copy())

    @property
    def episode_references(self) -> list:
        """The reference each row's current episode replays (None for a row never reset)."""
        return list(self.episodes.episode_references)
