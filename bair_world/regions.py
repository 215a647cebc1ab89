"""Scores over the pushing world's label regions (0 static, 1 arm, 2 objects; `bair_world.sim.render`):
region masks per predicted step, the pixels objects *arrived* at and *vacated* (`scored_masks`: both),
pooled PSNR over a mask, and the recall of moved pixels. Used by `training/evaluate.py` (regions on
recorded data) and `bair_world.counterfactual` (against the true world).

Frames are torch ``(..., 3, H, W)`` in [0, 1] (predictions are clipped); masks and labels ``(..., H, W)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bair_world.metrics import psnr_from_mse
from bair_world.sim.render import LABEL_ARM, LABEL_OBJECTS


def region_masks(labels: torch.Tensor, n_past: int) -> dict[str, torch.Tensor]:
    """{region: (B, S, H, W) bool} for the predicted steps from labels (B, T, H, W) uint8, S = T - n_past.

    Arm/objects at step t: the region in frame t or t-1 (so an arm that lags or vanishes is scored
    where it should be); static: static in both.
    """
    cur, prev = labels[:, n_past:], labels[:, n_past - 1:-1]  # (B, S, H, W) each
    arm = (cur == LABEL_ARM) | (prev == LABEL_ARM)
    objects = ((cur == LABEL_OBJECTS) | (prev == LABEL_OBJECTS)) & ~arm
    return {"arm": arm, "objects": objects, "static": ~(arm | objects)}


def moved_masks(labels: torch.Tensor, context: torch.Tensor) -> dict[str, torch.Tensor]:
    """{"arrived", "vacated": (B, S, H, W) bool}: where objects moved since the last context frame
    (or, given one reference per step, since each step's own reference).

    Args:
        labels: (B, S, H, W) labels of the true frames at the predicted steps.
        context: (B, H, W) labels of the last context frame, or (B, S, H, W) one reference per step
            (one-step prediction: the true frame before each step).

    Returns:
        arrived: object pixels at step t that showed the static scene in the context frame (an
        object moved onto the table there); vacated: object pixels of the context frame that show the
        static scene at step t (the table an object uncovered). Pixels the arm covers in either frame
        are left out: there the change is the arm's (an arm moving off an object "reveals" it, and
        any prediction that drops the dark arm is closer to the object than to it: on release 2's
        pushes such pixels have recall 0.94 against 0.06 for the rest), which arm PSNR scores.
    """
    from bair_world.sim.render import LABEL_STATIC

    context = context.unsqueeze(1) if context.dim() == labels.dim() - 1 else context  # (B, 1 or S, H, W)
    now, then = labels == LABEL_OBJECTS, context == LABEL_OBJECTS
    was_static, is_static = context == LABEL_STATIC, labels == LABEL_STATIC
    return {"arrived": now & was_static, "vacated": then & is_static}


def scored_masks(labels: torch.Tensor, reference: torch.Tensor) -> dict[str, torch.Tensor]:
    """{"arm", "objects", "static" (`region_masks`), "arrived", "vacated" (`moved_masks`)}: (B, S, H, W)
    bool each, for predictions from ``reference``.

    Args:
        labels: (B, S, H, W) labels of the true frames at the predicted steps.
        reference: labels of the last true frame the prediction saw: (B, H, W) the last context frame
            (free running: moved since the context) or (B, S, H, W) the frame before each step (one-step).
    """
    context = reference if reference.dim() == labels.dim() - 1 else reference[:, 0]  # (B, H, W)
    return {**region_masks(torch.cat([context[:, None], labels], 1), 1), **moved_masks(labels, reference)}


def masked_sse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of squared errors over the masked pixels and channels, number of those values), each (...)."""
    pred = pred.clamp(0.0, 1.0).double()
    m = mask.unsqueeze(-3).double()  # (..., 1, H, W)
    sq = ((pred - target.double()) ** 2 * m).sum((-3, -2, -1))
    return sq, m.sum((-3, -2, -1)) * pred.shape[-3]


def closer_counts(pred: torch.Tensor, target: torch.Tensor, reference: torch.Tensor,
                  mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked pixels where ``pred`` is strictly closer, L2 over RGB, to ``target`` than to ``reference``,
    masked pixels), each (...). With reference = the last context frame and target = the true frame at
    t, over the arrived (vacated) pixels: how often the prediction drew the moved object (the uncovered
    background) rather than keeping what was there. Copy-last scores 0 (its distance to the reference is 0)."""
    pred = pred.clamp(0.0, 1.0).double()
    to_target = (pred - target.double()).pow(2).sum(-3)  # (..., H, W)
    to_reference = (pred - reference.double()).pow(2).sum(-3)
    hits = ((to_target < to_reference) & mask).sum((-2, -1))
    return hits.double(), mask.sum((-2, -1)).double()


def pooled_psnr(sse, count):
    """PSNR (dB, capped at PSNR_CAP_DB) of pooled squared errors: 10 log10(count / sse); NaN where count is 0."""
    sse, count = np.asarray(sse, float), np.asarray(count, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, psnr_from_mse(sse / count), math.nan)


class PooledCurves:
    """Per-step pooled scores: sums of a numerator and a denominator over sequences, per predicted step.

    ``update(name, num, den)`` with (B, S) arrays; a metric is pooled as a PSNR (``kind="psnr"``: num =
    squared errors, den = values) or a ratio (``kind="ratio"``: e.g. recall = hits / pixels). The
    summary gives the pooled value at each step and over all steps and sequences.
    """

    def __init__(self):
        self.num: dict[str, np.ndarray] = {}
        self.den: dict[str, np.ndarray] = {}
        self.kind: dict[str, str] = {}

    def update(self, name: str, num, den, kind: str = "psnr") -> None:
        num, den = (np.asarray(x.cpu() if isinstance(x, torch.Tensor) else x, float) for x in (num, den))
        if num.ndim != 2 or num.shape != den.shape:
            raise ValueError(f"{name}: expected (sequences, steps) num and den of one shape, got {num.shape}, {den.shape}")
        self.num[name] = self.num.get(name, 0.0) + num.sum(0)
        self.den[name] = self.den.get(name, 0.0) + den.sum(0)
        self.kind[name] = kind

    def _value(self, name: str, num, den):
        if self.kind[name] == "psnr":
            return pooled_psnr(num, den)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(np.asarray(den) > 0, np.asarray(num) / np.maximum(den, 1e-300), math.nan)

    def summary(self) -> dict[str, dict]:
        """{metric: {"mean": pooled over everything, "per_step": [pooled per step], "pooled": True}}."""
        out = {}
        for name in self.num:
            per_step = self._value(name, self.num[name], self.den[name])
            total = float(self._value(name, self.num[name].sum(), self.den[name].sum()))
            out[name] = {"mean": total if math.isfinite(total) else None,
                         "per_step": [float(v) if math.isfinite(v) else None for v in per_step],
                         "pooled": True}
        return out
