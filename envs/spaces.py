"""Spaces and action validation shared by every bair-world env."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from gymnasium import spaces

from bair_world.data.batch import ACTION_DIM, COND_DIM, IMAGE_SIZE

#: Half-width of the action box in standard deviations when the checkpoint stores no min/max.
STD_BOUND = 4.0
#: Margin added on each side of a stored data min/max, as a fraction of the range, so a held-out
#: rollout's own actions are (almost) never clipped.
RANGE_MARGIN = 0.1


def check_render_mode(render_mode: str | None, metadata: dict) -> str | None:
    """``render_mode`` if it is None or one of ``metadata["render_modes"]``; else ValueError."""
    if render_mode is not None and render_mode not in metadata["render_modes"]:
        raise ValueError(f"render_mode must be None or one of {metadata['render_modes']}, got {render_mode!r}")
    return render_mode


def check_latent_seed(value) -> int:
    """A reset option ``latent_seed`` as an int in [0, 2**63) (what `torch.Generator.manual_seed` takes)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not 0 <= value < 2**63:
        raise ValueError(f"latent_seed must be an int in [0, 2**63), got {value!r}")
    return int(value)


def cond_bounds(normalisation: Mapping | None, cond_mean: np.ndarray, cond_std: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Finite (7,) low/high of the action box in raw BAIR units.

    Uses the training data's per-column ``cond_min``/``cond_max`` from the checkpoint's
    ``normalisation`` entry when present (widened by `RANGE_MARGIN` of the range on each side),
    otherwise ``cond_mean +- STD_BOUND * cond_std`` (the statistics the model normalises with).
    """
    normalisation = normalisation or {}
    if "cond_min" in normalisation and "cond_max" in normalisation:
        lo = np.asarray(normalisation["cond_min"], dtype=np.float64).reshape(-1)
        hi = np.asarray(normalisation["cond_max"], dtype=np.float64).reshape(-1)
        span = np.maximum(hi - lo, 1e-3)
        low, high = lo - RANGE_MARGIN * span, hi + RANGE_MARGIN * span
    else:
        mean = np.asarray(cond_mean, dtype=np.float64).reshape(-1)
        std = np.maximum(np.asarray(cond_std, dtype=np.float64).reshape(-1), 1e-3)
        low, high = mean - STD_BOUND * std, mean + STD_BOUND * std
    if low.shape != (COND_DIM,) or high.shape != (COND_DIM,):
        raise ValueError(f"normalisation statistics must have {COND_DIM} values, got {low.shape} and {high.shape}")
    if not (np.isfinite(low).all() and np.isfinite(high).all() and (low < high).all()):
        raise ValueError(f"normalisation statistics give an empty or non-finite action box: {low} .. {high}")
    return low.astype(np.float32), high.astype(np.float32)


def observation_space() -> spaces.Box:
    """Box(0, 255, (64, 64, 3), uint8): one RGB frame."""
    return spaces.Box(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)


def action_space(low: np.ndarray, high: np.ndarray) -> spaces.Box:
    """Box(low, high, (7,), float32): the model's condition, 4 action + 3 end-effector position.

    Columns, in raw BAIR units: ``[dx, dy, grip, z command, x, y, z]``: dx, dy the commanded
    end-effector move (metres, about +-0.07); grip (gripper closure, whole numbers 0..4) and the
    height command (0 hold, 1 lower, 2 lift) are small whole numbers in the data; x, y, z the
    end-effector position (metres: x 0.4-0.8, y -0.3-0.2, z 0.2-0.3) at the step the action is
    taken. ``low``/``high`` are the training data's range (`cond_bounds`), so every value inside is
    accepted, but the model only saw positions that follow from the previous position and action
    and whole numbers in columns 2-3: ``action_space.sample()`` (a new arm position each step,
    fractional columns) is far outside that. For the 4-dim action with the position integrated as
    the arm moves, wrap with `bair_world.envs.IntegratePosition`.
    """
    return spaces.Box(low.astype(np.float32), high.astype(np.float32), (COND_DIM,), np.float32)


#: What an action of each width holds, for the error messages of `clip_checked_actions`.
_ACTION_COLUMNS = {COND_DIM: "(4 action + 3 end-effector position)", ACTION_DIM: "[dx, dy, grip, z command]"}


def clip_checked_actions(actions, num_envs: int | None, low: np.ndarray, high: np.ndarray,
                         dtype: type = np.float32) -> np.ndarray:
    """Check actions (shape, real numbers, finite) and clip them into [low, high].

    One check for every env: the model-world and true-world envs' 7-dim cond (action + position)
    and the goal envs' 4-dim action (``D = len(low)``).

    Args:
        actions: (D,) for a single env (``num_envs=None``) or (num_envs, D).
        num_envs: batch size expected, or None for a single action.
        low, high: (D,) bounds.
        dtype: of the result (the goal envs keep float64, what the pushing world computes in).

    Returns:
        ``dtype`` (num_envs or 1, D), clipped into [low, high].

    Raises:
        ValueError: wrong shape, not numeric (strings, complex, bools, objects), or NaN/inf (named
            by env row and column).
    """
    dim = len(low)
    try:
        raw = np.asarray(actions)
        if raw.dtype.kind not in "iuf":  # strings, complex, bools and objects are not silently coerced
            raise TypeError(f"dtype {raw.dtype}")
        arr = raw.astype(dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"action must be numeric (real numbers), got {type(actions).__name__}: {exc}") from None
    expected = (dim,) if num_envs is None else (num_envs, dim)
    if arr.shape != expected:
        raise ValueError(f"action must have shape {expected} {_ACTION_COLUMNS.get(dim, '')}, got {arr.shape}")
    arr = arr.reshape(-1, dim)  # (D,) or (N, D) -> (N, D)
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        where = f"column {col}" if num_envs is None else f"env {row}, column {col}"
        raise ValueError(f"action contains NaN or inf ({where}: {arr[row, col]})")
    return np.clip(arr, low, high, out=arr)  # in place: ``arr`` is already the one cast's fresh copy
