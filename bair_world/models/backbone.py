"""The skip-connected encoder/decoder pattern shared by the VGG-64 and DCGAN-64 backbones.

Both encoders run four stages (64, 32, 16, 8 px at the stage's output for VGG; 32, 16, 8, 4 px for
DCGAN), keep each stage's output as a skip, and end in a conv + BatchNorm + tanh code head. Both
decoders map the code to 4x4, then at each of four stages concatenate the mirrored skip and run
the stage; the output is a sigmoid image (or its logits). The backbones differ only in their
layers and in how the resolution changes between stages: VGG pools and upsamples (``down``/``up``),
DCGAN's stride-2 convolutions do it inside the stages (``down``/``up`` are identities).
"""

from __future__ import annotations

import abc

import torch
from torch import nn


def scaled(channels: int, width: float) -> int:
    """Channel count ``channels * width``, at least 4."""
    return max(4, int(round(channels * width)))


def widths(width: float) -> tuple[int, int, int, int]:
    """The four stage widths 64/128/256/512 scaled by ``width``."""
    return tuple(scaled(c, width) for c in (64, 128, 256, 512))  # type: ignore[return-value]


def code_head(nin: int, g_dim: int) -> nn.Sequential:
    """4x4 valid conv (4 px -> 1) + BatchNorm + tanh: the encoder's code."""
    return nn.Sequential(nn.Conv2d(nin, g_dim, 4, 1, 0), nn.BatchNorm2d(g_dim), nn.Tanh())


def code_stem(g_dim: int, nout: int) -> nn.Sequential:
    """4x4 transposed conv (1 px -> 4) + BatchNorm + LeakyReLU(0.2): the decoder's first stage."""
    return nn.Sequential(nn.ConvTranspose2d(g_dim, nout, 4, 1, 0), nn.BatchNorm2d(nout), nn.LeakyReLU(0.2, inplace=True))


class SkipEncoder(nn.Module, abc.ABC):
    """Frame (B, nc, 64, 64) -> (code (B, g_dim) in [-1, 1], [the four stage outputs, finest first]).

    Subclasses take ``(g_dim, nc=3, width=1.0)`` (code size, image channels, channel multiplier:
    1.0 = 64/128/256/512) and set ``c1``..``c4`` (stages), ``c5`` (`code_head`) and ``down``.
    """

    down: nn.Module

    def __init__(self, g_dim: int):
        super().__init__()
        self.g_dim = g_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h1 = self.c1(x)
        h2 = self.c2(self.down(h1))
        h3 = self.c3(self.down(h2))
        h4 = self.c4(self.down(h3))
        h5 = self.c5(self.down(h4))  # (B, g_dim, 1, 1)
        return h5.reshape(h5.shape[0], self.g_dim), [h1, h2, h3, h4]  # (B, g_dim, 1, 1) -> (B, g_dim)


def spatial_maps(cond: torch.Tensor, size: int) -> torch.Tensor:
    """Normalised conds (B, k) as feature maps for a decoder stage: (B, k + 2, size, size), the k
    values broadcast over the image beside two coordinate channels (x, y in [-1, 1], CoordConv).

    The convolutions after them can place the arm from the end-effector position without a fixed
    camera projection (the pushing world jitters its camera; real BAIR has no calibration).
    """
    b, k = cond.shape
    ramp = torch.linspace(-1.0, 1.0, size, device=cond.device, dtype=cond.dtype)
    coords = torch.stack([ramp.expand(size, size), ramp.reshape(size, 1).expand(size, size)])  # (2, S, S): x, y
    return torch.cat([cond.reshape(b, k, 1, 1).expand(b, k, size, size), coords.expand(b, 2, size, size)], 1)


class SkipDecoder(nn.Module, abc.ABC):
    """(code (B, g_dim), skips[, cond]) -> frame (B, nc, 64, 64) in [0, 1] (or its logits).

    Subclasses take ``(g_dim, nc=3, width=1.0, cond_maps=0)`` (``width`` as the encoder's) and set
    ``upc1`` (`code_stem`), ``upc2``..``upc5`` (stages fed [previous, skip(, cond maps)] along
    channels) and ``up``. With ``cond_maps = k > 0`` every stage after the stem also gets the k
    normalised conds as `spatial_maps` (k + 2 more input channels).
    """

    up: nn.Module

    def __init__(self, g_dim: int, cond_maps: int = 0):
        super().__init__()
        self.g_dim = g_dim
        self.cond_maps = cond_maps
        self.extra = cond_maps + 2 if cond_maps else 0
        """Input channels each stage after the stem takes beside [previous, skip]."""

    def forward(self, h: torch.Tensor, skips: list[torch.Tensor], cond: torch.Tensor | None = None,
                logits: bool = False) -> torch.Tensor:
        """Decode; ``logits=True`` returns the pre-sigmoid output (for the residual variant)."""
        out = self.upc5(self.features(h, skips, cond))  # (B, nc, 64, 64)
        return out if logits else torch.sigmoid(out)

    def _stage_input(self, prev: torch.Tensor, skip: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        parts = [self.up(prev), skip]
        if self.cond_maps:
            parts.append(spatial_maps(cond.to(skip.dtype), skip.shape[-1]))
        return torch.cat(parts, 1)

    def features(self, h: torch.Tensor, skips: list[torch.Tensor], cond: torch.Tensor | None = None) -> torch.Tensor:
        """The last stage's input, [upsampled d4, skip of the first stage(, cond maps)] (B, 2*c1
        (+ extra), ...): what ``upc5`` (and a `final_stage` head beside it) maps to the 64x64 output.

        ``cond`` (B, cond_maps): normalised conds, needed when the decoder was built with ``cond_maps``.
        """
        if self.cond_maps and (cond is None or tuple(cond.shape) != (h.shape[0], self.cond_maps)):
            raise ValueError(f"this decoder takes cond ({h.shape[0]}, {self.cond_maps}), got "
                             f"{None if cond is None else tuple(cond.shape)}")
        d1 = self.upc1(h.reshape(h.shape[0], self.g_dim, 1, 1))  # (B, g_dim) -> (B, g_dim, 1, 1) -> (B, c4, 4, 4)
        d2 = self.upc2(self._stage_input(d1, skips[3], cond))  # (B, c3, 8, 8)
        d3 = self.upc3(self._stage_input(d2, skips[2], cond))  # (B, c2, 16, 16)
        d4 = self.upc4(self._stage_input(d3, skips[1], cond))  # (B, c1, 32, 32)
        return self._stage_input(d4, skips[0], cond)

    @abc.abstractmethod
    def final_stage(self, nout: int) -> nn.Module:
        """A new last stage with ``nout`` output maps: same layers as ``upc5`` (for extra heads)."""
