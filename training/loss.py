"""The training loss: one forward pass over a batch of whole sequences, and its teacher forcing.

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

import random

import torch
import torch.nn.functional as F
from torch import nn

from bair_world.models import SVG
from bair_world.models.motion import DecodeParts
from bair_world.sim.render import LABEL_ARM
from bair_world.training.motion_loss import CHANGE_THRESHOLD, flow_loss, mask_loss, motion_targets, pyramid_warp_loss


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
        change_weight: extra MSE weight of the pixels that change (`changed_pixels`: the arm and
            moved objects, a few % of the frame): each counts 1 + change_weight times; the
            weighted MSE is normalised by the mean weight, so it stays on the MSE's scale.
        arm_weight: extra MSE weight of the arm's pixels (``labels`` == `LABEL_ARM` in the predicted
            frames), added to change_weight's; needs ``labels`` in `forward`.
        flow_weight, mask_weight, warp_weight: weights of the motion-path losses
            (`bair_world.training.motion_loss`: true flow, branch masks, blurred-pyramid warp); the
            first two need ``labels`` and ``flow`` in `forward`.
    """

    def __init__(self, model: SVG, n_past: int, detach_feedback: bool = False, l1_weight: float = 0.0,
                 gdl_weight: float = 0.0, change_weight: float = 0.0, flow_weight: float = 0.0,
                 mask_weight: float = 0.0, warp_weight: float = 0.0, arm_weight: float = 0.0):
        super().__init__()
        if (flow_weight or mask_weight or warp_weight) and not model.cfg.motion:
            raise ValueError("the motion losses (flow, mask, warp weights) need a model with the motion output")
        self.flow_weight, self.mask_weight, self.warp_weight = flow_weight, mask_weight, warp_weight
        self.parts = bool(flow_weight or mask_weight or warp_weight)
        self.model = model
        self.n_past = n_past
        self.detach_feedback = detach_feedback
        self.l1_weight = l1_weight
        self.gdl_weight = gdl_weight
        self.change_weight = change_weight
        self.arm_weight = arm_weight

    def forward(self, frames: torch.Tensor, conds: torch.Tensor, beta: torch.Tensor, teacher: torch.Tensor,
                labels: torch.Tensor | None = None,
                flow: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss of a batch of sequences.

        Args:
            frames: (B, T, 3, 64, 64) ground truth in [0, 1].
            conds: (B, T, 7) raw conds (cond_t drives x_t -> x_{t+1}).
            beta: () KL weight.
            teacher: (T,) bool, teacher[t] = feed ground truth x_{t-1} at step t (ignored in context).
            labels, flow: (B, T, H, W) uint8 region labels and (B, T, 2, H, W) true flow of the
                frames (the simulator's targets); needed with flow_weight or mask_weight.

        Returns:
            (loss, mse, kl): scalars; mse and kl are means over steps (kl summed over z, batch-mean);
            loss = mse + l1_weight * L1 + gdl_weight * GDL + beta * kl.
        """
        model = self.model
        b, t_len = frames.shape[:2]
        # Time-major rows, so that each step's frames are one contiguous block of B rows.
        x_tm = frames.transpose(0, 1).reshape(t_len * b, *frames.shape[2:])  # (B, T, C, H, W) -> (T*B, C, H, W)
        h_all, skips_all = model.encoder(x_tm)  # every ground-truth frame encoded once
        codes = h_all.split(b)  # T x (B, g); split (not indexing) keeps the backward one concatenation
        skips = list(zip(*(s.split(b) for s in skips_all)))  # T x (per level (B, ...))
        state = model.init_state(b, frames.device)
        if (self.flow_weight or self.mask_weight) and (labels is None or flow is None):
            raise ValueError("flow_weight/mask_weight need the data's labels and flow (data from the built-in world)")
        if self.arm_weight and labels is None:
            raise ValueError("arm_weight needs the data's labels (data from the built-in world)")
        pending: list[tuple] = []  # (h_pred, skips, x_in, cond, context) of steps still to decode
        blocks: list[DecodeParts] = []  # decoded predictions, time-major, (k*B, C, H, W) frames each
        kl_total = frames.new_zeros((), dtype=torch.float32)
        for t in range(1, t_len):
            if t - 1 < self.n_past or bool(teacher[t]):  # x_{t-1} is context or teacher-forced
                x_in, h_in, skips_in = x_tm[(t - 1) * b:t * b], codes[t - 1], list(skips[t - 1])
            else:  # the model's own prediction of x_{t-1}: decode what is pending, then encode it
                blocks.append(self._decode(pending))
                pending = []
                x_in = blocks[-1].frame[-b:].detach() if self.detach_feedback else blocks[-1].frame[-b:]
                h_in, skips_in = model.encoder(x_in)
            adv = model.advance(state, h_in, skips_in, conds[:, t - 1], codes[t], x_prev=x_in)
            state = adv.state
            pending.append((adv.h_pred, adv.state.skips, x_in, conds[:, t - 1], adv.state.context))
            kl_total = kl_total + adv.kl.float().mean()
        blocks.append(self._decode(pending))
        pred = torch.cat([p.frame for p in blocks]).float()  # ((T-1)*B, C, H, W): predictions of x_1 .. x_{T-1}, time-major
        target = x_tm[b:].float()
        mse = F.mse_loss(pred, target)
        kl = kl_total / (t_len - 1)
        loss = mse if not (self.change_weight or self.arm_weight) else weighted_mse(pred, target, self._weights(frames, labels))
        loss = loss + beta * kl
        if self.l1_weight:
            loss = loss + self.l1_weight * F.l1_loss(pred, target)
        if self.gdl_weight:
            loss = loss + self.gdl_weight * gradient_difference(pred, target)
        if self.parts:
            loss = loss + self._motion_losses(blocks, x_tm, b, labels, flow)
        return loss, mse, kl

    def _weights(self, frames: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """((T-1)*B, 1, H, W) per-pixel MSE weights: 1 + change_weight at changed pixels + arm_weight at
        the arm's."""
        weight = 1 + self.change_weight * changed_pixels(frames.float(), self.n_past)
        return weight + self.arm_weight * arm_pixels(labels) if self.arm_weight else weight

    def _motion_losses(self, blocks: list[DecodeParts], x_tm: torch.Tensor, b: int, labels, flow) -> torch.Tensor:
        """The weighted motion-path losses of the decoded steps (`bair_world.training.motion_loss`)."""
        pred_flow = torch.cat([p.flow for p in blocks])  # ((T-1)*B, 2, H, W), time-major
        total = pred_flow.new_zeros((), dtype=torch.float32)
        if self.warp_weight:
            total = total + self.warp_weight * pyramid_warp_loss(x_tm[:-b].float(), x_tm[b:].float(), pred_flow)
        if self.flow_weight or self.mask_weight:
            targets = motion_targets(labels, flow, self.n_past, self.model.cfg.context_mask)
            if self.flow_weight:
                total = total + self.flow_weight * flow_loss(pred_flow, targets)
            if self.mask_weight:
                parts = DecodeParts(None, None, torch.cat([p.weights for p in blocks]),
                                    None if blocks[0].logits is None else torch.cat([p.logits for p in blocks]))
                total = total + self.mask_weight * mask_loss(parts, targets)
        return total

    def _decode(self, pending: list[tuple]) -> DecodeParts:
        """Decode k pending steps (h_pred, skips, x_in, cond, context) in one call: the steps' frames
        (k*B, C, H, W) in order, with their flows and branch weights when the motion losses need them."""
        decode = self.model.decode_parts if self.parts else (lambda *a: DecodeParts(self.model.decode(*a), None, None))
        if len(pending) == 1:
            return decode(*pending[0])
        h = torch.cat([p[0] for p in pending])  # k x (B, g) -> (k*B, g)
        skips = [torch.cat(level) for level in zip(*(p[1] for p in pending))]  # per level (k*B, ...)
        x_in = torch.cat([p[2] for p in pending])  # (k*B, C, H, W)
        cond = torch.cat([p[3] for p in pending])  # (k*B, 7)
        context = None if pending[0][4] is None else torch.cat([p[4] for p in pending])  # (k*B, C, H, W)
        return decode(h, skips, x_in, cond, context)


def arm_pixels(labels: torch.Tensor) -> torch.Tensor:
    """The arm's pixels in x_1 .. x_{T-1}, time-major as the loss's predictions.

    Args:
        labels: (B, T, H, W) uint8 region labels (`bair_world.sim.render`).

    Returns:
        ((T-1)*B, 1, H, W) float 0/1.
    """
    b, t_len = labels.shape[:2]
    arm = (labels[:, 1:] == LABEL_ARM).float()  # (B, T-1, H, W)
    return arm.transpose(0, 1).reshape((t_len - 1) * b, 1, *labels.shape[2:])  # (T-1, B, H, W) -> (N, 1, H, W)


def changed_pixels(frames: torch.Tensor, n_past: int) -> torch.Tensor:
    """Pixels of x_1 .. x_{T-1} that differ from the previous frame or from the last context frame
    (the arm, and objects where they arrived or left), time-major as the loss's predictions.

    Args:
        frames: (B, T, C, H, W) ground truth.

    Returns:
        ((T-1)*B, 1, H, W) float 0/1.
    """
    b, t_len = frames.shape[:2]
    context = frames[:, n_past - 1:n_past]  # (B, 1, C, H, W)
    step = (frames[:, 1:] - frames[:, :-1]).abs().amax(2)  # (B, T-1, H, W)
    since = (frames[:, 1:] - context).abs().amax(2)  # (B, T-1, H, W)
    changed = ((step > CHANGE_THRESHOLD) | (since > CHANGE_THRESHOLD)).float()
    return changed.transpose(0, 1).reshape((t_len - 1) * b, 1, *frames.shape[3:])  # (T-1, B, H, W) -> (N, 1, H, W)


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of weight * (pred - target)^2 over pixels, divided by the mean weight (weight (N, 1, H, W))."""
    return ((pred - target).pow(2) * weight).mean() / weight.mean()


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
