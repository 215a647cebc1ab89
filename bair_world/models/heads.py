"""The decoder's output heads: how the decoder's last features become the next frame.

One registry (`HEADS`) that `SVG` reads: the model builds the configured head's modules
(`head_name(cfg)`: ``plain`` without ``motion``, else ``cfg.flow_head``) and delegates `SVG.decode` and
`SVG.decode_parts` to it. A head registers its modules on the model under its own names, which are
the checkpoint's keys (``motion_head.*``, ``flow_pyramid.*`` since release 3), so checkpoints load
unchanged. A new head is a subclass here and one entry in `HEADS` (and its name in
`bair_world.models.config.FLOW_HEADS`, which the torch-free config validates against).
"""

from __future__ import annotations

import torch
from torch import nn

from bair_world.models.config import ModelConfig
from bair_world.models.motion import MOTION_HEAD_BIAS, DecodeParts, FlowPyramid, composite

_LOGIT_EPS = 1e-3  # keeps logit(x_prev) finite for the residual variant (|logit| <= 6.9)


def generated_logits(model: nn.Module, feats: torch.Tensor, x_prev: torch.Tensor) -> torch.Tensor:
    """The generated branch's logits (N, C, 64, 64) from the decoder features: the decoder's last stage,
    on top of logit(x_t) for the ``residual`` variant."""
    out = model.decoder.upc5(feats)
    if model.cfg.residual:
        return torch.logit(x_prev.clamp(_LOGIT_EPS, 1 - _LOGIT_EPS)) + out
    return out


class OutputHead:
    """An output head: the modules it adds to the model, their initialisation, and the decoding. Heads
    hold no state (the modules live on the model), so one instance serves every model."""

    def modules(self, cfg: ModelConfig, decoder: nn.Module) -> dict[str, nn.Module]:
        """The modules the model registers, by attribute name (their checkpoint key prefix), in order."""
        return {}

    def initialise(self, model: nn.Module) -> None:
        """The head's own initial weights, applied after the model's `init_weights`."""

    def frame(self, model: nn.Module, feats: torch.Tensor, x_prev: torch.Tensor,
              context: torch.Tensor | None) -> torch.Tensor:
        """The next frame (N, C, 64, 64) in [0, 1]: `decode_parts`' frame unless the head has a cheaper way."""
        return self.decode_parts(model, feats, x_prev, context).frame

    def decode_parts(self, model: nn.Module, feats: torch.Tensor, x_prev: torch.Tensor,
                     context: torch.Tensor | None) -> DecodeParts:
        """The next frame and how it was made, from the decoder features ``feats`` (`SkipDecoder.features`),
        x_t ``x_prev`` and the last real context frame ``context`` (or None)."""
        raise NotImplementedError


class PlainHead(OutputHead):
    """No motion output: the generated frame alone (all weight on the generated branch)."""

    def frame(self, model, feats, x_prev, context):
        return torch.sigmoid(generated_logits(model, feats, x_prev))

    def decode_parts(self, model, feats, x_prev, context):
        frame = self.frame(model, feats, x_prev, context)
        weights = torch.zeros_like(frame[:, :1]).expand(-1, 3, -1, -1).clone()  # (N, 3, H, W)
        weights[:, 1] = 1.0
        return DecodeParts(frame, None, weights)


class SingleFlowHead(OutputHead):
    """Releases 1-3: one more final decoder stage gives the flow (``max_flow * tanh(raw)``) and the mask
    logits; the masks start shut (`MOTION_HEAD_BIAS`), so a new head computes what the plain one did."""

    bias = MOTION_HEAD_BIAS
    """Initial bias of the motion head's outputs (flow x, flow y, warp logit, context logit)."""

    def modules(self, cfg, decoder):
        # flow x, flow y, warp-mask logit (, context-mask logit)
        return {"motion_head": decoder.final_stage(4 if cfg.context_mask else 3)}

    def initialise(self, model):
        last = model.motion_head_output()
        nn.init.zeros_(last.weight)  # no flow
        with torch.no_grad():
            last.bias.copy_(torch.tensor(self.bias[:last.bias.numel()]))

    def flow(self, model: nn.Module, feats: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        """(N, 2, 64, 64) flow in pixels from the motion head's output ``motion`` (N, 3 or 4, 64, 64)."""
        return model.cfg.max_flow * torch.tanh(motion[:, :2])

    def decode_parts(self, model, feats, x_prev, context):
        if model.cfg.context_mask and context is None:
            raise ValueError("a context_mask model decodes with the context frame (N, C, 64, 64)")
        generated = torch.sigmoid(generated_logits(model, feats, x_prev))
        motion = model.motion_head(feats)  # (N, 3 or 4, 64, 64): flow x, flow y (pixels), mask logit(s)
        return composite(motion, generated, x_prev, context if model.cfg.context_mask else None,
                         self.flow(model, feats, motion))


class PyramidFlowHead(SingleFlowHead):
    """``"pyramid"``: a coarse-to-fine flow (`FlowPyramid`) plus the 64-px stage's residual, smoothly
    bounded (``max_flow * tanh(raw / max_flow)``); masks start open (all logits 0)."""

    bias = (0.0,) * 4

    def modules(self, cfg, decoder):
        return {**super().modules(cfg, decoder), "flow_pyramid": FlowPyramid(decoder.final_in, cfg.max_flow)}

    def initialise(self, model):
        super().initialise(model)
        model.flow_pyramid.zero_outputs()

    def flow(self, model, feats, motion):
        limit = model.cfg.max_flow
        return limit * torch.tanh((model.flow_pyramid(feats) + motion[:, :2]) / limit)


HEADS: dict[str, OutputHead] = {"plain": PlainHead(), "single": SingleFlowHead(), "pyramid": PyramidFlowHead()}
"""Every output head by name: ``plain`` for models without ``motion``, else `ModelConfig.flow_head`."""


def head_name(cfg: ModelConfig) -> str:
    """The name of the configured output head in `HEADS`."""
    return cfg.flow_head if cfg.motion else "plain"
