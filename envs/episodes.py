"""`EpisodeBatch`: the bookkeeping of N bair-world episodes over one `WorldModel`.

The single env is an `EpisodeBatch` of one row and the vector env one of N rows; neither holds any
stepping logic of its own. Per row it keeps the reference rollout, the frame index ``t`` and a torch
generator, so row i of a batch draws exactly the latents a single env with the same seed draws.

Time indexing (docs/architecture.md): the transition x_t -> x_{t+1} is conditioned on
cond_t = concat(action_t, position_t). After a reset the env shows frame ``t = n_past - 1`` and
``info["action"]``/``info["position"]`` are the reference's cond_t for the next transition.
"""

from __future__ import annotations


import numpy as np
import torch

from bair_world.configtypes import is_int
from bair_world.checkpoint import context_frames, load_checkpoint, resolve_checkpoint
from bair_world.metrics import psnr as psnr_metric
from bair_world.data.batch import frames_to_float, frames_to_uint8
from bair_world.world_model import WorldModel, check_precision
from bair_world.envs.options import WorldOptions
from bair_world.envs.references import Reference, make_references
from bair_world.devices import resolve_device
from bair_world.envs.spaces import check_actions, cond_bounds


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
        self.n_past = context_frames(self.checkpoint)  # context frames fed at reset: the checkpoint's
        model, self.config = load_checkpoint(self.checkpoint, self.device)
        self.core = WorldModel(model, self.device, world.precision, compile=world.compile)
        self.low, self.high = cond_bounds(self.config.get("normalisation"), model.cond_mean.cpu().numpy(),
                                          model.cond_std.cpu().numpy())
        self.references = (world.references if world.references is not None
                           else make_references(world.data_root, world.split, world.num_references))
        self.refs: list[Reference | None] = [None] * self.num_envs
        self.t = np.zeros(self.num_envs, dtype=np.int64)
        self.generators = [torch.Generator(device="cpu") for _ in range(self.num_envs)]
        self.started = False

    # -- reset ---------------------------------------------------------------------------------
    def reset_rows(self, rows: np.ndarray, indices: np.ndarray, torch_seeds: np.ndarray) -> np.ndarray:
        """Start new episodes in ``rows`` from references ``indices``.

        Args:
            rows: (k,) distinct row numbers; the first call must reset every row.
            indices: (k,) reference indices.
            torch_seeds: (k,) seeds of the rows' latent generators.

        Returns:
            (k, 64, 64, 3) uint8: the last context frame of each row (a fresh array).
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        refs = [self.references[int(i)] for i in np.asarray(indices).reshape(-1)]
        for ref in refs:
            ref.check_steps(self.n_past)
        gens = []
        for row, ref, seed in zip(rows, refs, np.asarray(torch_seeds).reshape(-1)):
            self.refs[row] = ref
            self.t[row] = self.n_past - 1
            self.generators[row].manual_seed(int(seed))
            gens.append(self.generators[row])
        ctx = frames_to_float(np.stack([r.frames[: self.n_past] for r in refs]))  # (k, n_past, 3, 64, 64)
        conds = torch.from_numpy(np.stack([r.conds[: self.n_past - 1] for r in refs]))  # (k, n_past-1, 7)
        full = not self.started or (len(rows) == self.num_envs and np.array_equal(rows, np.arange(self.num_envs)))
        if not full and not self.started:
            raise RuntimeError("reset every env before a partial reset")
        self.core.reset(ctx, conds, gens, rows=None if full else rows)
        self.started = True
        return np.stack([r.frames[self.n_past - 1] for r in refs]).copy()

    # -- step ----------------------------------------------------------------------------------
    def check_actions(self, actions, single: bool) -> np.ndarray:
        """Validate and clip: (7,) when ``single`` else (num_envs, 7) -> float32 (k, 7)."""
        return check_actions(actions, None if single else self.num_envs, self.low, self.high)

    def step_rows(self, rows: np.ndarray, conds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One batched model call for ``rows`` with already-checked conds (k, 7).

        Returns:
            frames (k, 64, 64, 3) uint8 (fresh), psnr (k,) float64 against the reference frame,
            truncated (k,) bool (the reference has no further frame).
        """
        if not self.started:
            raise RuntimeError("step() before reset()")
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        gens = [self.generators[r] for r in rows]
        every = len(rows) == self.num_envs
        pred = self.core.step(torch.from_numpy(np.ascontiguousarray(conds, np.float32)), gens,
                              rows=None if every else rows)  # (k, 3, 64, 64) in [0, 1]
        self.t[rows] += 1
        # k x (64, 64, 3) uint8 -> (k, 3, 64, 64) uint8 (the metric divides by 255)
        target = torch.from_numpy(np.stack([self.refs[r].frames[self.t[r]] for r in rows])).permute(0, 3, 1, 2)
        psnr = psnr_metric(pred, target).double().cpu().numpy().reshape(-1)  # (k,) dB, pred clipped to [0, 1]
        truncated = np.array([self.t[r] >= len(self.refs[r]) - 1 for r in rows], dtype=bool)
        return frames_to_uint8(pred), psnr, truncated

    # -- info ----------------------------------------------------------------------------------
    def row_info(self, row: int) -> dict:
        """The reference's next cond (action/position), step index, reference index and id of a row."""
        ref, t = self.refs[row], int(self.t[row])
        return {
            "action": ref.actions[t].copy(),
            "position": ref.positions[t].copy(),
            "step": t - (self.n_past - 1),
            "frame_index": t,
            "index": ref.index,
            "rollout_id": ref.rollout_id,
        }
