"""VGG-64 encoder and decoder with skip connections (Denton & Fergus 2018, the seed's backbone).

The encoder maps a (B, 3, 64, 64) frame to a tanh code (B, g_dim) and four skip feature maps at
64, 32, 16 and 8 pixels; the decoder mirrors it, concatenating the skips on the way up, and ends in
a sigmoid. ``width`` scales the channel counts 64/128/256/512 for a CPU-light variant.
"""

from __future__ import annotations

import torch
from torch import nn


def scaled(channels: int, width: float) -> int:
    """Channel count ``channels * width``, at least 4."""
    return max(4, int(round(channels * width)))


def vgg_layer(nin: int, nout: int) -> nn.Sequential:
    """3x3 conv (same size) + BatchNorm + LeakyReLU(0.2)."""
    return nn.Sequential(nn.Conv2d(nin, nout, 3, 1, 1), nn.BatchNorm2d(nout), nn.LeakyReLU(0.2, inplace=True))


class VGGEncoder(nn.Module):
    """Frame (B, nc, 64, 64) -> (code (B, g_dim) in [-1, 1], [skips at 64, 32, 16, 8 px]).

    Args:
        g_dim: code size.
        nc: image channels.
        width: channel multiplier (1.0 = the seed's 64/128/256/512).
    """

    def __init__(self, g_dim: int, nc: int = 3, width: float = 1.0):
        super().__init__()
        c1, c2, c3, c4 = (scaled(c, width) for c in (64, 128, 256, 512))
        self.g_dim = g_dim
        self.c1 = nn.Sequential(vgg_layer(nc, c1), vgg_layer(c1, c1))  # 64 x 64
        self.c2 = nn.Sequential(vgg_layer(c1, c2), vgg_layer(c2, c2))  # 32 x 32
        self.c3 = nn.Sequential(vgg_layer(c2, c3), vgg_layer(c3, c3), vgg_layer(c3, c3))  # 16 x 16
        self.c4 = nn.Sequential(vgg_layer(c3, c4), vgg_layer(c4, c4), vgg_layer(c4, c4))  # 8 x 8
        self.c5 = nn.Sequential(nn.Conv2d(c4, g_dim, 4, 1, 0), nn.BatchNorm2d(g_dim), nn.Tanh())  # 4 -> 1
        self.mp = nn.MaxPool2d(kernel_size=2, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h1 = self.c1(x)  # (B, c1, 64, 64)
        h2 = self.c2(self.mp(h1))  # (B, c2, 32, 32)
        h3 = self.c3(self.mp(h2))  # (B, c3, 16, 16)
        h4 = self.c4(self.mp(h3))  # (B, c4, 8, 8)
        h5 = self.c5(self.mp(h4))  # (B, g_dim, 1, 1)
        return h5.reshape(h5.shape[0], self.g_dim), [h1, h2, h3, h4]  # (B, g_dim, 1, 1) -> (B, g_dim)


class VGGDecoder(nn.Module):
    """(code (B, g_dim), skips) -> frame (B, nc, 64, 64) in [0, 1] (or its logits).

    Args:
        g_dim: code size.
        nc: image channels.
        width: channel multiplier; must match the encoder's.
    """

    def __init__(self, g_dim: int, nc: int = 3, width: float = 1.0):
        super().__init__()
        c1, c2, c3, c4 = (scaled(c, width) for c in (64, 128, 256, 512))
        self.g_dim = g_dim
        self.upc1 = nn.Sequential(  # 1 -> 4
            nn.ConvTranspose2d(g_dim, c4, 4, 1, 0), nn.BatchNorm2d(c4), nn.LeakyReLU(0.2, inplace=True)
        )
        self.upc2 = nn.Sequential(vgg_layer(c4 * 2, c4), vgg_layer(c4, c4), vgg_layer(c4, c3))  # 8 x 8
        self.upc3 = nn.Sequential(vgg_layer(c3 * 2, c3), vgg_layer(c3, c3), vgg_layer(c3, c2))  # 16 x 16
        self.upc4 = nn.Sequential(vgg_layer(c2 * 2, c2), vgg_layer(c2, c1))  # 32 x 32
        self.upc5 = nn.Sequential(vgg_layer(c1 * 2, c1), nn.ConvTranspose2d(c1, nc, 3, 1, 1))  # 64 x 64
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, h: torch.Tensor, skips: list[torch.Tensor], logits: bool = False) -> torch.Tensor:
        """Decode; ``logits=True`` returns the pre-sigmoid output (for the residual variant)."""
        d1 = self.upc1(h.reshape(h.shape[0], self.g_dim, 1, 1))  # (B, g_dim) -> (B, g_dim, 1, 1) -> (B, c4, 4, 4)
        d2 = self.upc2(torch.cat([self.up(d1), skips[3]], 1))  # (B, c3, 8, 8)
        d3 = self.upc3(torch.cat([self.up(d2), skips[2]], 1))  # (B, c2, 16, 16)
        d4 = self.upc4(torch.cat([self.up(d3), skips[1]], 1))  # (B, c1, 32, 32)
        out = self.upc5(torch.cat([self.up(d4), skips[0]], 1))  # (B, nc, 64, 64)
        return out if logits else torch.sigmoid(out)
