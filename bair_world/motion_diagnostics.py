"""Motion diagnostics: per region of the true world, how the model made its frames and how its flow
compares with the true one (the counterfactual evaluation's "why", `bair_world.counterfactual`).

A motion model composites a warp of x_t by a predicted flow, a generated frame and the last context
frame (`bair_world.models.motion.DecodeParts`). A model that fails to carry pushed objects shows it
here: little warp weight where objects move, or a flow that does not point where they came from.

Regions per predicted step (masks (B, S, H, W), from the true world's labels and true flow):
``static`` and ``arm`` (`regions.region_masks`: the region in frame t or t-1), ``moving`` (object
pixels of frame t whose true flow exceeds `MOVING_PX`), ``arrived`` and ``vacated``
(`regions.moved_masks`: since the last context frame when free running, in the step when one-step).
Statistics per region, pooled over its pixels (and sequences), per step and overall: the mean
weight of each branch (`BRANCHES`), the mean magnitude of the predicted (``flow``) and true
(``true_flow``) flow in pixels, the end-point error ``epe`` (mean |pred - true| in pixels) over the
region, and the ``cosine`` similarity of predicted and true flow over the region's pixels whose true
flow exceeds `MOVING_PX` (the direction is undefined elsewhere). A model without a motion output has
weights (0, 1, 0) and ``flow``, ``epe``, ``cosine`` None.

Flows are backward, in pixels (x, y): frame_t[y, x] ~ frame_{t-1}[y + fy, x + fx] (`models.motion.warp`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from bair_world import regions
from bair_world.sim.render import LABEL_OBJECTS

MODES = ("free_running", "one_step")
"""The model fed its own predictions, or the true previous frame at every step."""
REGIONS = ("static", "arm", "moving", "arrived", "vacated")
BRANCHES = ("warp", "generated", "context")
FLOW_STATS = ("flow", "cosine", "epe")
"""The statistics of the predicted flow (None without a motion output)."""
STATS = (*BRANCHES, *FLOW_STATS, "true_flow")
MOVING_PX = 0.5
"""True flow (pixels per step) above which a pixel moves: the ``moving`` region and the cosine's pixels."""


def motion_regions(labels: torch.Tensor, reference_labels: torch.Tensor,
                   true_flow: torch.Tensor) -> dict[str, torch.Tensor]:
    """{region: (B, S, H, W) bool} of `REGIONS` (module docstring).

    Args:
        labels: (B, S, H, W) uint8 labels of the true frames at the predicted steps.
        reference_labels: labels of the last true frame the model saw (`regions.scored_masks`): (B, H, W)
            the last context frame (free running) or (B, S, H, W) the frame before each step (one-step).
        true_flow: (B, S, 2, H, W) the true backward flow of each true frame from the one before.
    """
    masks = regions.scored_masks(labels, reference_labels)
    moving = (labels == LABEL_OBJECTS) & (true_flow.norm(dim=2) > MOVING_PX)
    return {name: moving if name == "moving" else masks[name] for name in REGIONS}


class MotionStats:
    """Per-region motion statistics of one mode, pooled over the batches given to `update`."""

    def __init__(self):
        self.curves = regions.PooledCurves()
        self.has_flow = True

    def update(self, masks: dict[str, torch.Tensor], weights: torch.Tensor, flow: torch.Tensor | None,
               true_flow: torch.Tensor) -> None:
        """Add one batch.

        Args:
            masks: `motion_regions`' masks, (B, S, H, W) bool each.
            weights: (B, S, 3, H, W) per-pixel branch weights (warp, generated, context).
            flow: (B, S, 2, H, W) the predicted backward flow in pixels, or None (no motion output).
            true_flow: (B, S, 2, H, W) the true one.
        """
        self.has_flow = self.has_flow and flow is not None
        true_flow = true_flow.double()
        moving = true_flow.norm(dim=2) > MOVING_PX  # (B, S, H, W)
        per_pixel = {branch: weights[:, :, i].double() for i, branch in enumerate(BRANCHES)}
        per_pixel["true_flow"] = true_flow.norm(dim=2)
        if flow is not None:
            flow = flow.double()
            per_pixel["flow"] = flow.norm(dim=2)
            per_pixel["epe"] = (flow - true_flow).norm(dim=2)
            cosine = F.cosine_similarity(flow, true_flow, dim=2, eps=1e-12)  # (B, S, H, W)
        for region, mask in masks.items():
            m = mask.double()
            pixels = m.sum((-2, -1))  # (B, S)
            for stat, values in per_pixel.items():
                self.curves.update(f"{region}/{stat}", (values * m).sum((-2, -1)), pixels, kind="ratio")
            if flow is not None:
                m = (mask & moving).double()
                self.curves.update(f"{region}/cosine", (cosine * m).sum((-2, -1)), m.sum((-2, -1)), kind="ratio")

    def summary(self) -> dict[str, dict[str, Any]]:
        """{region: {stat: {"mean", "per_step"} or None}} for `STATS` (None: `FLOW_STATS` without flow);
        a mean over no pixels is None."""
        pooled = self.curves.summary()
        out: dict[str, dict[str, Any]] = {}
        for name, value in pooled.items():
            region, stat = name.split("/")
            out.setdefault(region, {})[stat] = {"mean": value["mean"], "per_step": value["per_step"]}
        for stats in out.values():
            for stat in FLOW_STATS:
                stats[stat] = stats.get(stat) if self.has_flow else None
        return out
