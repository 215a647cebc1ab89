"""The pixel-motion output of the SVG decoder: warp, the coarse-to-fine flow head, and a step's parts.

The next frame composites branches with softmax (or sigmoid) masks (after Finn et al. 2016, SV2P):
``m_warp * warp(x_t, flow) + m_gen * generated + m_ctx * x_context``. Two flow heads:

* ``"single"`` (releases 1-3): the flow comes from one extra final decoder stage at 64x64,
  ``MAX_FLOW_PX * tanh(raw)``; its mask logits start at -6 (the warp shut), so a new head computes
  what the plain decoder did.
* ``"pyramid"``: a coarse-to-fine flow (`FlowPyramid`): predicted at 8x8 from the pooled decoder
  features, upsampled and refined at 16, 32 and 64 px, bounded smoothly by ``max_flow``
  (``max_flow * tanh(raw / max_flow)``, so near zero one unit is one pixel). A coarse cell moves a
  whole object, and a blurred-pyramid warp loss (`bair_world.training` ``warp_weight``) gives the flow
  gradient for moves of several pixels. Its masks start open (all logits 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

MAX_FLOW_PX = 4.0
"""Largest displacement of the ``"single"`` flow head, in pixels per step."""

MOTION_HEAD_BIAS = (0.0, 0.0, -6.0, -6.0)
"""Initial bias of the ``"single"`` head's outputs (flow x, flow y, warp logit, context logit): no
flow, masks ~0, so a new head starts as the plain decoder output."""

PYRAMID_LEVELS = (8, 16, 32)
"""Resolutions (px) at which `FlowPyramid` predicts and refines the flow before the 64-px stage."""


@dataclass
class DecodeParts:
    """One decoded step and how it was made.

    Attributes:
        frame: (N, C, 64, 64) the predicted frame in [0, 1].
        flow: (N, 2, 64, 64) the warp's backward flow in pixels (x, y), or None without a motion output.
        weights: (N, 3, 64, 64) each branch's weight per pixel, (warp, generated, context), summing to 1
            (a model without motion: all on the generated branch; without a context mask: context 0).
        logits: (N, 3, 64, 64) the mask logits behind ``weights`` (softmax models; None otherwise).
    """

    frame: torch.Tensor
    flow: torch.Tensor | None
    weights: torch.Tensor
    logits: torch.Tensor | None = None


def warp(frames: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp frames (N, C, H, W) by a flow field (N, 2, H, W) in pixels: out[y, x] =
    frames[y + flow_y, x + flow_x], bilinear, borders extended."""
    n, _, h, w = frames.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=frames.device, dtype=flow.dtype),
                            torch.arange(w, device=frames.device, dtype=flow.dtype), indexing="ij")
    gx = (xs + flow[:, 0]) * (2.0 / (w - 1)) - 1.0  # (N, H, W) in grid_sample's [-1, 1] (align_corners=True)
    gy = (ys + flow[:, 1]) * (2.0 / (h - 1)) - 1.0
    grid = torch.stack([gx, gy], -1)  # (N, H, W, 2)
    return F.grid_sample(frames, grid.to(frames.dtype), mode="bilinear", padding_mode="border", align_corners=True)


def upsample_flow(flow: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear upsampling of a flow (N, 2, h, h) in pixels of the final 64x64 frame to (N, 2, size, size)
    (the values are already in final-frame pixels, so they are not rescaled)."""
    return F.interpolate(flow, size=(size, size), mode="bilinear", align_corners=False)


class FlowPyramid(nn.Module):
    """Coarse-to-fine flow from decoder features (N, C, S, S): (N, 2, 64, 64) raw flow in pixels.

    The features are squeezed to ``hidden`` channels once (1x1 conv: the pyramid costs ~3 GFLOP per 200
    frames instead of ~18 on the full features); at each level L of `PYRAMID_LEVELS` a small conv block
    sees them average-pooled to LxL beside the flow so far (upsampled, divided by ``scale``) and adds a
    residual; the last conv of each block starts at zero, so a new pyramid predicts no flow.

    Args:
        channels: feature channels C.
        scale: flow normaliser for the blocks' inputs (the head's ``max_flow``).
        hidden: width of the squeezed features and of each block.
    """

    def __init__(self, channels: int, scale: float, hidden: int = 16):
        super().__init__()
        self.scale = float(scale)
        self.squeeze = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.LeakyReLU(0.2, inplace=True))
        self.levels = nn.ModuleList(
            nn.Sequential(nn.Conv2d(hidden + 2, hidden, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                          nn.Conv2d(hidden, hidden, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                          nn.Conv2d(hidden, 2, 3, 1, 1))
            for _ in PYRAMID_LEVELS)

    def zero_outputs(self) -> None:
        """Start with no flow: every level's last conv at zero."""
        for block in self.levels:
            nn.init.zeros_(block[-1].weight)
            nn.init.zeros_(block[-1].bias)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        feats = self.squeeze(feats)  # (N, C, S, S) -> (N, hidden, S, S)
        flow = feats.new_zeros(feats.shape[0], 2, PYRAMID_LEVELS[0], PYRAMID_LEVELS[0])
        for size, block in zip(PYRAMID_LEVELS, self.levels):
            flow = upsample_flow(flow, size) if flow.shape[-1] != size else flow
            pooled = F.adaptive_avg_pool2d(feats, size)  # (N, hidden, S, S) -> (N, hidden, L, L)
            flow = flow + block(torch.cat([pooled, flow / self.scale], 1))
        return upsample_flow(flow, 64)  # (N, 2, 32, 32) -> (N, 2, 64, 64)


def composite(motion: torch.Tensor, generated: torch.Tensor, x_prev: torch.Tensor, context: torch.Tensor | None,
              flow: torch.Tensor) -> DecodeParts:
    """Composite the branches: ``motion`` (N, 3 or 4, 64, 64) holds [flow x, flow y, warp logit(, context
    logit)] (the flow channels are already turned into ``flow``); the generated branch's logit is 0."""
    warped = warp(x_prev, flow)
    if context is None:  # two branches: a sigmoid mask
        m = torch.sigmoid(motion[:, 2:3])
        weights = torch.cat([m, 1 - m, torch.zeros_like(m)], 1)
        return DecodeParts(m * warped + (1 - m) * generated, flow, weights)
    logits = torch.cat([motion[:, 2:3], torch.zeros_like(motion[:, 2:3]), motion[:, 3:4]], 1).float()
    m = torch.softmax(logits, 1).to(warped.dtype)  # (N, 3, H, W): warp, generated, context
    frame = m[:, 0:1] * warped + m[:, 1:2] * generated + m[:, 2:3] * context.to(warped.dtype)
    return DecodeParts(frame, flow, m, logits)
