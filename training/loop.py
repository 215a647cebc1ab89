"""The pieces of one training epoch: the sequence loss, the sampler, validation PSNR.

Training step (per batch of sequences x_0 .. x_{T-1} with conds cond_0 .. cond_{T-1}), for
t = 1 .. T-1::

    x_in = x_{t-1}                       if t-1 < n_past (context) or teacher forcing at t
         = the model's prediction of x_{t-1}   otherwise (kept in the graph unless detach_feedback)
    out  = model.step(state, x_in, cond_{t-1}, x_next=x_t)      # z from the posterior q(z | x_t)
    loss = mean_t [ MSE(out.frame, x_t) (pixel mean) + beta * mean_batch(KL_t) ]  (KL summed over z)
           (+ optional L1 and gradient-difference terms against blur)

Teacher-forcing decisions arrive as a (T,) bool tensor and are applied with ``torch.where`` so a
compiled loss does not recompile per pattern.
"""

from __future__ import annotations

import math
import random
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Sampler

from bair_world import metrics
from bair_world.models import SVG
from bair_world.world_model import WorldModel


class SequenceLoss(nn.Module):
    """Wraps an `SVG` so that one ``forward`` runs a whole training sequence (what DDP wraps).

    Same result as calling ``model.step`` once per time step (module docstring), with less work:
    every ground-truth frame is encoded once, in one batched encoder call over the whole sequence
    (a per-step loop encodes each frame twice, as x_t and as x_{t+1}), and the decoder runs once
    for each run of steps whose predictions are not fed back (all steps at once under full teacher
    forcing). Only BatchNorm's batch statistics differ, as they are taken over the larger batches.

    Args:
        model: the model being trained.
        n_past: context frames (always fed as ground truth).
        detach_feedback: detach fed-back predictions from the graph.
        l1_weight: weight of an L1 pixel loss added to the MSE (penalises blur less forgivingly).
        gdl_weight: weight of the gradient difference loss (Mathieu et al. 2016: |grad pred| vs
            |grad truth|, L1), which punishes blurred edges.
    """

    def __init__(self, model: SVG, n_past: int, detach_feedback: bool = False, l1_weight: float = 0.0,
                 gdl_weight: float = 0.0):
        super().__init__()
        self.model = model
        self.n_past = n_past
        self.detach_feedback = detach_feedback
        self.l1_weight = l1_weight
        self.gdl_weight = gdl_weight

    def forward(self, frames: torch.Tensor, conds: torch.Tensor, beta: torch.Tensor,
                teacher: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss of a batch of sequences.

        Args:
            frames: (B, T, 3, 64, 64) ground truth in [0, 1].
            conds: (B, T, 7) raw conds (cond_t drives x_t -> x_{t+1}).
            beta: () KL weight.
            teacher: (T,) bool, teacher[t] = feed ground truth x_{t-1} at step t (ignored in context).

        Returns:
            (loss, mse, kl): scalars; mse and kl are means over steps (kl summed over z, batch-mean);
            loss = mse + l1_weight * L1 + gdl_weight * GDL + beta * kl.
        """
        model = self.model
        b, t_len = frames.shape[:2]
        h_all, skips_all = model.encoder(frames.flatten(0, 1))  # (B*T, 3, 64, 64) -> (B*T, g), skips
        h_all = h_all.unflatten(0, (b, t_len))  # (B*T, g) -> (B, T, g)
        skips_all = [s.unflatten(0, (b, t_len)) for s in skips_all]  # (B*T, ...) -> (B, T, ...)
        truth_in = [t < self.n_past or bool(teacher[t + 1]) for t in range(t_len - 1)]  # x_t fed as ground truth?
        state = model.init_state(b, frames.device)
        pending: list[tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]] = []  # (h_pred, skips, x_in) to decode
        preds: list[torch.Tensor] = []
        kl_total = frames.new_zeros((), dtype=torch.float32)
        for t in range(1, t_len):
            if truth_in[t - 1]:
                x_in, h_in, skips_in = frames[:, t - 1], h_all[:, t - 1], [s[:, t - 1] for s in skips_all]
            else:  # the model's own prediction of x_{t-1}: decode what is pending, then encode it
                preds += self._decode(pending)
                pending = []
                x_in = preds[-1].detach() if self.detach_feedback else preds[-1]
                h_in, skips_in = model.encoder(x_in)
            adv = model.advance(state, h_in, skips_in, conds[:, t - 1], h_all[:, t])
            state = adv.state
            pending.append((adv.h_pred, adv.state.skips, x_in))
            kl_total = kl_total + adv.kl.float().mean()
        preds += self._decode(pending)
        pred = torch.stack(preds, 1).float()  # (B, T-1, 3, 64, 64) predictions of x_1 .. x_{T-1}
        target = frames[:, 1:].float()
        mse = F.mse_loss(pred, target)
        kl = kl_total / (t_len - 1)
        loss = mse + beta * kl
        if self.l1_weight:
            loss = loss + self.l1_weight * F.l1_loss(pred, target)
        if self.gdl_weight:
            loss = loss + self.gdl_weight * gradient_difference(pred, target)
        return loss, mse, kl

    def _decode(self, pending: list[tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]]) -> list[torch.Tensor]:
        """Decode k pending steps in one call; returns k frames (B, 3, 64, 64)."""
        if not pending:
            return []
        k = len(pending)
        h = torch.cat([p[0] for p in pending])  # k x (B, g) -> (k*B, g)
        skips = [torch.cat(level) for level in zip(*(p[1] for p in pending))]  # per level (k*B, ...)
        x_in = torch.cat([p[2] for p in pending])  # (k*B, 3, 64, 64)
        return list(self.model.render(h, skips, x_in).chunk(k))  # (k*B, ...) -> k x (B, ...)


def gradient_difference(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gradient difference loss (alpha = 1): mean | |d pred| - |d target| | over x and y differences.

    Args:
        pred, target: (..., H, W) images.
    """
    dx = lambda x: (x[..., :, 1:] - x[..., :, :-1]).abs()  # noqa: E731
    dy = lambda x: (x[..., 1:, :] - x[..., :-1, :]).abs()  # noqa: E731
    return (dx(pred) - dx(target)).abs().mean() + (dy(pred) - dy(target)).abs().mean()


def teacher_mask(ratio: float, length: int, mode: str, rng: random.Random) -> torch.Tensor:
    """(length,) bool teacher-forcing decisions: one draw for the whole sequence ("sequence") or one
    per step ("step"), each True with probability ``ratio``."""
    if mode == "sequence":
        return torch.full((length,), rng.random() < ratio, dtype=torch.bool)
    return torch.tensor([rng.random() < ratio for _ in range(length)], dtype=torch.bool)


class EpochSampler(Sampler[int]):
    """Random sequence indices for one epoch, a pure function of (seed, epoch), sharded over ranks.

    An epoch draws ``num_samples * world_size`` indices by concatenating random permutations of the
    dataset (each sequence seen about equally often), and rank r takes every world_size-th index
    from position r, like `torch.utils.data.DistributedSampler`. Because the order depends only on
    the seed and `set_epoch`, a resumed run draws exactly the batches the uninterrupted run would;
    ``set_epoch(epoch, start)`` skips the first ``start`` indices (resuming inside an epoch).

    Args:
        dataset_len: sequences in the split.
        num_samples: indices per rank per epoch (epoch_size * batch_size).
        seed: the run's seed.
        rank: this process's rank.
        world_size: number of processes.
    """

    def __init__(self, dataset_len: int, num_samples: int, seed: int, rank: int = 0, world_size: int = 1):
        if dataset_len < 1:
            raise ValueError("EpochSampler: the dataset is empty")
        self.dataset_len, self.num_samples = dataset_len, num_samples
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Draw the order of ``epoch``, beginning at its ``start``-th index (this rank's count)."""
        if not 0 <= start <= self.num_samples:
            raise ValueError(f"EpochSampler: start {start} outside [0, {self.num_samples}]")
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.num_samples - self.start

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        total = self.num_samples * self.world_size
        perms = [torch.randperm(self.dataset_len, generator=g) for _ in range(math.ceil(total / self.dataset_len))]
        order = torch.cat(perms)[:total]
        return iter(order[self.rank::self.world_size][self.start:].tolist())


def seed_everything(seed: int, rank: int, epoch: int) -> random.Random:
    """Seed torch, numpy and python RNGs from (seed, rank, epoch); returns the python RNG the loop
    draws teacher-forcing decisions from. Seeding per epoch makes a resumed run exact at epoch
    granularity on every rank, without gathering each rank's RNG state."""
    mixed = (seed * 1_000_003 + rank * 10_007 + epoch) % (2**63)
    torch.manual_seed(mixed)
    np.random.seed(mixed % (2**32))
    random.seed(mixed)
    return random.Random(mixed)


def baseline_psnr(frames: torch.Tensor, n_past: int) -> float:
    """PSNR of the copy-last-frame baseline: x_{n_past-1} repeated for every predicted frame."""
    return float(metrics.psnr(metrics.copy_last_frame(frames, n_past), frames[:, n_past:]).mean())


@torch.no_grad()
def validate(model: SVG, frames: torch.Tensor, conds: torch.Tensor, n_past: int, n_future: int,
             device: torch.device, seed: int, batch_size: int = 64) -> tuple[float, torch.Tensor]:
    """Validation PSNR: n_past context frames, n_future predicted, one prior sample per sequence.

    Args:
        model: the model (left in eval mode; the caller restores train mode).
        frames: (N, n_past + n_future, 3, 64, 64) on CPU.
        conds: (N, n_past + n_future, 7) raw conds.
        n_past, n_future: the protocol.
        device: where to run.
        seed: seed of the latent samples (fixed, so epochs are comparable).
        batch_size: sequences per model call.

    Returns:
        (mean PSNR over predicted frames and sequences, predictions (N, n_future, 3, 64, 64) on CPU).
    """
    world = WorldModel(model, device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    preds = []
    for start in range(0, frames.shape[0], batch_size):
        f = frames[start:start + batch_size].to(device)
        c = conds[start:start + batch_size].to(device)
        preds.append(world.rollout(f, c, n_past, n_future, generator).float().cpu())
    pred = torch.cat(preds)  # (N, n_future, 3, 64, 64)
    return float(metrics.psnr(pred, frames[:, n_past:]).mean()), pred
