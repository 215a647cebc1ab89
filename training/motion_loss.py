"""Losses on the motion path (issue 28): what the warp branch should carry, from the simulator and from images.

* ``flow``: end-point error of the predicted flow against the pushing world's true flow at the pixels
  that move with a part (arm, objects), plus a small pull to zero on the static scene;
* ``mask``: the branch weights against their targets: warp where a part is (it moved there from
  somewhere), the last context frame (or the warp, for two-mask models) where nothing has changed since
  the context; no target where something was uncovered (only the generated branch can draw it);
* ``warp``: images only: the warp of the previous frame by the predicted flow against the next frame,
  on a blurred pyramid (average-pooled by 1, 2, 4, 8), where the frames changed. At 1/8 resolution a
  move of 6 px is under one pixel, inside a bilinear warp's gradient, so the flow learns moves of
  several pixels before the mask has opened.

The first two need the data's ``labels`` and ``flow`` (`bair_world.data` ``targets=True``: data from
the built-in world); the third needs nothing but frames. All are means, so their weights are scale-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bair_world.models.motion import DecodeParts, warp
from bair_world.sim.render import LABEL_ARM, LABEL_OBJECTS, LABEL_STATIC

PYRAMID_SCALES = (1, 2, 4, 8)
"""Average-pooling factors of the blurred-pyramid warp loss."""
STATIC_FLOW_WEIGHT = 0.1
"""Weight of the static scene's flow (pulled to 0) beside the moving pixels' end-point error."""
WARP, GENERATED, CONTEXT, IGNORE = 0, 1, 2, -1
"""Mask target classes (the branches' order in `DecodeParts.weights`) and 'no target'."""
CHANGE_THRESHOLD = 0.05
"""A pixel counts as changed when a channel differs by more than this (in [0, 1] units): the cells
the warp loss scores and the pixels the moving-pixel weighting (`bair_world.training.loss`) counts."""


@dataclass(frozen=True)
class MotionTargets:
    """The simulator's targets of a batch's predicted steps, time-major like the loss's predictions.

    Attributes:
        moving: (N, H, W) bool: pixels of a part (arm, objects) that came from a part (not uncovered).
        flow: (N, 2, H, W) the true backward flow in pixels.
        mask: (N, H, W) long: WARP, CONTEXT (WARP for two-mask models) or IGNORE per pixel.
    """

    moving: torch.Tensor
    flow: torch.Tensor
    mask: torch.Tensor


def motion_targets(labels: torch.Tensor, flow: torch.Tensor, n_past: int, context_mask: bool) -> MotionTargets:
    """Targets of x_1 .. x_{T-1} from the window's labels (B, T, H, W) uint8 and flow (B, T, 2, H, W)
    (flow[:, t]: frame t's flow from frame t-1)."""
    b, t_len = labels.shape[:2]
    labels = labels.long()
    cur, prev = labels[:, 1:], labels[:, :-1]  # (B, T-1, H, W)
    ctx = labels[:, n_past - 1:n_past]  # (B, 1, H, W)
    # an object pixel where the arm was stays still in the flow but shows what the arm uncovered
    moving = (cur == LABEL_ARM) | ((cur == LABEL_OBJECTS) & (prev != LABEL_ARM))
    untouched = (cur == LABEL_STATIC) & (prev == LABEL_STATIC) & (ctx == LABEL_STATIC)
    mask = torch.full_like(cur, IGNORE)
    mask[untouched] = CONTEXT if context_mask else WARP
    mask[moving] = WARP
    tm = lambda x: x.transpose(0, 1).reshape((t_len - 1) * b, *x.shape[2:])  # (B, T-1, ...) -> ((T-1)*B, ...)
    return MotionTargets(tm(moving), tm(flow[:, 1:].float()), tm(mask))


def flow_loss(pred: torch.Tensor, targets: MotionTargets) -> torch.Tensor:
    """Mean end-point error (px) over the moving pixels + STATIC_FLOW_WEIGHT x mean |flow| elsewhere."""
    epe = (pred.float() - targets.flow).pow(2).sum(1).add(1e-6).sqrt()  # (N, H, W)
    moving = targets.moving
    still = (targets.mask != IGNORE) & ~moving  # untouched since the context
    loss = _masked_mean(epe, moving)
    return loss + STATIC_FLOW_WEIGHT * _masked_mean(pred.float().pow(2).sum(1).add(1e-6).sqrt(), still)


def mask_loss(parts: DecodeParts, targets: MotionTargets) -> torch.Tensor:
    """Mean negative log weight of each supervised pixel's target branch (cross-entropy on the masks)."""
    if parts.logits is not None:
        logp = torch.log_softmax(parts.logits.float(), 1)
    else:
        logp = parts.weights.float().clamp_min(1e-6).log()
    sel = targets.mask != IGNORE
    picked = logp.gather(1, targets.mask.clamp_min(0).unsqueeze(1)).squeeze(1)  # (N, H, W)
    return -_masked_mean(picked, sel)


def pyramid_warp_loss(x_prev: torch.Tensor, x_next: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Mean over `PYRAMID_SCALES` of the Charbonnier error of warp(pool(x_prev), pool(flow) / s) against
    pool(x_next), over the cells where the frames changed (x_prev, x_next (N, C, H, W) ground truth)."""
    changed = ((x_next - x_prev).abs().amax(1, keepdim=True) > CHANGE_THRESHOLD).float()  # (N, 1, H, W)
    total = x_prev.new_zeros((), dtype=torch.float32)
    for s in PYRAMID_SCALES:
        pool = (lambda x: F.avg_pool2d(x, s)) if s > 1 else (lambda x: x)
        err = (warp(pool(x_prev), pool(flow) / s) - pool(x_next)).float()
        charb = err.pow(2).add(1e-6).sqrt().mean(1)  # (N, h, w)
        where = (F.max_pool2d(changed, s) if s > 1 else changed)[:, 0] > 0
        total = total + _masked_mean(charb, where)
    return total / len(PYRAMID_SCALES)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask``; 0 (with a gradient path) when nothing is selected."""
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp_min(1.0)
