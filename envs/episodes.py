"""`EpisodeBatch`: the bookkeeping of N bair-world episodes over one `WorldModel`.

The single env is an `EpisodeBatch` of one row and the vector env one of N rows; neither holds any
stepping logic of its own. Per row it keeps the reference rollout, the frame index ``t`` and a torch
generator, so row i of a batch draws exactly the latents a single env with the same seed draws. A
step's results are a `StepResult`; `episode_infos` builds the ``info`` of every world env, as
columns over rows (the vector env here; row 0 of it, `episode_info`, for the single env and the true
world's ``PushWorld-v0``).

Time indexing (docs/architecture.md): the transition x_t -> x_{t+1} is conditioned on
cond_t = concat(action_t, position_t). After a reset the env shows frame ``t = n_past - 1`` and
``info["action"]``/``info["position"]`` are the reference's cond_t for the next transition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bair_world.configtypes import is_int
from bair_world.checkpoint import load_checkpoint, resolve_checkpoint
from bair_world.metrics import psnr as psnr_metric
from bair_world.data.batch import frames_to_float, frames_to_uint8
from bair_world.world_model import WorldModel, check_precision
from bair_world.envs.memory import check_num_envs
from bair_world.envs.options import WorldOptions
from bair_world.envs.references import Reference
from bair_world.devices import resolve_device
from bair_world.envs.spaces import clip_checked_actions, cond_bounds


#: The per-row measures every step reports (`StepResult.metrics`: ``info`` keys after a step).
STEP_METRICS = ("psnr",)
#: The rows of a single env: row 0 of a one-row `EpisodeBatch`.
SINGLE_ROW = np.zeros(1, np.int64)
SINGLE_ROW.setflags(write=False)


@dataclass(frozen=True)
class StepResult:
    """What one batched step of k rows gives (`EpisodeBatch.step_rows`).

    Attributes:
        frames: (k, 64, 64, 3) uint8 predicted frames (a fresh array).
        truncated: (k,) bool: the reference has no further frame.
        metrics: per-row measures of the step (`STEP_METRICS`), each (k,) float64, keyed by their
            ``info`` name: ``psnr`` (dB) of the predicted frame against the reference's.
    """

    frames: np.ndarray
    truncated: np.ndarray
    metrics: dict[str, np.ndarray]

    def row_metrics(self, i: int) -> dict[str, float]:
        """The measures of the step's ``i``-th row, as ``info`` holds them."""
        return {name: float(values[i]) for name, values in self.metrics.items()}


def episode_infos(refs: Sequence[Reference], t: np.ndarray, n_past: int,
                  metrics: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The ``info`` of k episodes, each showing frame ``t[i]`` of ``refs[i]``, as columns over the k
    rows: the references' next cond (``action`` (k, 4), ``position`` (k, 3)), ``step`` (steps taken),
    ``frame_index`` (t), ``index`` and ``rollout_id`` of the references, and after a step its
    ``metrics`` (``psnr`` (k,)). The one info builder of every world env: the vector env scatters the
    columns into its rows, a single env takes row 0 (`episode_info`)."""
    t = np.asarray(t, dtype=np.int64).reshape(-1)
    columns = {"action": np.stack([ref.actions[i] for ref, i in zip(refs, t)]),  # k x (4,) -> (k, 4)
               "position": np.stack([ref.positions[i] for ref, i in zip(refs, t)]),  # k x (3,) -> (k, 3)
               "step": t - (n_past - 1), "frame_index": t.copy(),
               "index": np.array([ref.index for ref in refs], dtype=np.int64),
               "rollout_id": np.array([ref.rollout_id for ref in refs], dtype=object)}
    columns.update(metrics or {})
    return columns


def episode_info(ref: Reference, t: int, n_past: int, metrics: Mapping[str, float] | None = None) -> dict[str, Any]:
    """`episode_infos` of one episode: arrays for ``action``/``position``, Python scalars for the rest."""
    columns = episode_infos([ref], np.array([t]), n_past, {k: np.array([v]) for k, v in (metrics or {}).items()})
    return {key: col[0] if col.ndim > 1 else _scalar(col[0]) for key, col in columns.items()}


def _scalar(value: Any) -> Any:
    """A numpy scalar as the Python scalar it holds (a str or other object as it is)."""
    return value.item() if isinstance(value, np.generic) else value


class EpisodeBatch:
    """N episodes of the learned world model, stepped with one batched model call.

    Args:
        num_envs: rows.
        world: the model, the references and how the model runs (`WorldOptions`).
    """

    def __init__(self, num_envs: int, world: WorldOptions):
        if not is_int(num_envs) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        self.num_envs = int(num_envs)
        self.checkpoint = resolve_checkpoint(world.checkpoint)
        self.device = resolve_device(world.device)
        check_precision(world.precision, self.device)  # before loading: a bad value fails fast
        model, self.config = load_checkpoint(self.checkpoint, self.device)  # config and weights of one save
        self.n_past = model.cfg.n_past  # context frames fed at reset: the checkpoint's
        if self.num_envs > 1:  # refused before the rows' buffers, generators and references exist
            check_num_envs(self.num_envs, model, self.device)
        self.core = WorldModel(model, self.device, world.precision, compile=world.compile)
        self.low, self.high = cond_bounds(self.config.get("normalisation"), model.cond_mean.cpu().numpy(),
                                          model.cond_std.cpu().numpy())
        self.reference_pool = world.reference_pool()
        # the reference each row's current episode replays (None before its first reset)
        self.episode_references: list[Reference | None] = [None] * self.num_envs
        self.t = np.zeros(self.num_envs, dtype=np.int64)  # each row's frame index
        self.last = np.zeros(self.num_envs, dtype=np.int64)  # each row's reference's last frame index
        self.generators = [torch.Generator(device="cpu") for _ in range(self.num_envs)]
        self.started = False

    # -- reset ---------------------------------------------------------------------------------
    def reset_rows(self, rows: np.ndarray, indices: np.ndarray, torch_seeds: np.ndarray) -> np.ndarray:
        """Start new episodes in ``rows`` from references ``indices`` of the pool.

        Args:
            rows: (k,) distinct row numbers; the first call must reset every row.
            indices: (k,) reference indices.
            torch_seeds: (k,) seeds of the rows' latent generators.

        Returns:
            (k, 64, 64, 3) uint8: the last context frame of each row (a fresh array).
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        refs = [self.reference_pool[int(i)] for i in np.asarray(indices).reshape(-1)]
        for ref in refs:
            ref.check_steps(self.n_past)
        gens = []
        for row, ref, seed in zip(rows, refs, np.asarray(torch_seeds).reshape(-1)):
            self.episode_references[row] = ref
            self.t[row], self.last[row] = self.n_past - 1, len(ref) - 1
            self.generators[row].manual_seed(int(seed))
            gens.append(self.generators[row])
        ctx = frames_to_float(np.stack([r.frames[: self.n_past] for r in refs]))  # (k, n_past, 3, 64, 64)
        conds = torch.from_numpy(np.stack([r.conds[: self.n_past - 1] for r in refs]))  # (k, n_past-1, 7)
        full = not self.started or (len(rows) == self.num_envs and np.array_equal(rows, np.arange(self.num_envs)))
        if not full and not self.started:
            raise RuntimeError("reset every env before a partial reset")
        self.core.reset(ctx, conds, gens, rows=None if full else rows)
        self.started = True
        return np.stack([r.frames[self.n_past - 1] for r in refs])  # k x (64, 64, 3) -> (k, 64, 64, 3), a fresh array

    # -- step ----------------------------------------------------------------------------------
    def check_actions(self, actions, single: bool) -> np.ndarray:
        """The one check and the one cast of a step's actions: (7,) when ``single`` else (num_envs, 7)
        -> float32 (k, 7), clipped into the action box (`spaces.clip_checked_actions`)."""
        return clip_checked_actions(actions, None if single else self.num_envs, self.low, self.high)

    def step_rows(self, rows: np.ndarray, conds: np.ndarray) -> StepResult:
        """One batched model call for ``rows`` with already-checked conds (k, 7) (float32 from
        `check_actions` is used as it is); PSNR against the reference frame at the new ``t``."""
        if not self.started:
            raise RuntimeError("step() before reset()")
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        every = len(rows) == self.num_envs
        pred = self.core.step(torch.as_tensor(conds, dtype=torch.float32), [self.generators[r] for r in rows],
                              rows=None if every else rows)  # (k, 3, 64, 64) in [0, 1]
        self.t[rows] += 1
        # k x (64, 64, 3) uint8 -> (k, 3, 64, 64) uint8 (the metric divides by 255)
        target = torch.from_numpy(np.stack([self.episode_references[r].frames[self.t[r]] for r in rows]))
        psnr = psnr_metric(pred, target.permute(0, 3, 1, 2)).double().cpu().numpy().reshape(-1)  # (k,) dB
        return StepResult(frames_to_uint8(pred), self.t[rows] >= self.last[rows], {"psnr": psnr})

    # -- info ----------------------------------------------------------------------------------
    def infos(self, rows: np.ndarray, metrics: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """`episode_infos` of ``rows`` (columns over them; with a step's ``metrics`` of those rows)."""
        return episode_infos([self.episode_references[r] for r in rows], self.t[rows], self.n_past, metrics)

    def row_info(self, row: int, metrics: Mapping[str, float] | None = None) -> dict[str, Any]:
        """Row ``row``'s `episode_info` (with a step's ``metrics``, `StepResult.row_metrics`)."""
        return episode_info(self.episode_references[row], int(self.t[row]), self.n_past, metrics)
