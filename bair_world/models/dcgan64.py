"""DCGAN-64 encoder and decoder with skip connections (the lighter SVG backbone).

4x4 stride-2 convolutions halve the resolution 64 -> 32 -> 16 -> 8 -> 4, a final 4x4 conv gives the
tanh code; the decoder mirrors it with transposed convolutions and concatenated skips.
``width`` scales the channel counts 64/128/256/512.
"""

from __future__ import annotations

import torch
from torch import nn

from bair_world.models.vgg64 import scaled


def dcgan_conv(nin: int, nout: int) -> nn.Sequential:
    """4x4 stride-2 conv (halves the size) + BatchNorm + LeakyReLU(0.2)."""
    return nn.Sequential(nn.Conv2d(nin, nout, 4, 2, 1), nn.BatchNorm2d(nout), nn.LeakyReLU(0.2, inplace=True))


def dcgan_upconv(nin: int, nout: int) -> nn.Sequential:
    """4x4 stride-2 transposed conv (doubles the size) + BatchNorm + LeakyReLU(0.2)."""
    return nn.Sequential(
        nn.ConvTranspose2d(nin, nout, 4, 2, 1), nn.BatchNorm2d(nout), nn.LeakyReLU(0.2, inplace=True)
    )


class DCGANEncoder(nn.Module):
    """Frame (B, nc, 64, 64) -> (code (B, g_dim) in [-1, 1], [skips at 32, 16, 8, 4 px]).

    Args:
        g_dim: code size.
        nc: image channels.
        width: channel multiplier (1.0 = 64/128/256/512).
    """

    def __init__(self, g_dim: int, nc: int = 3, width: float = 1.0):
        super().__init__()
        c1, c2, c3, c4 = (scaled(c, width) for c in (64, 128, 256, 512))
        self.g_dim = g_dim
        self.c1 = dcgan_conv(nc, c1)  # 64 -> 32
        self.c2 = dcgan_conv(c1, c2)  # 32 -> 16
        self.c3 = dcgan_conv(c2, c3)  # 16 -> 8
        self.c4 = dcgan_conv(c3, c4)  # 8 -> 4
        self.c5 = nn.Sequential(nn.Conv2d(c4, g_dim, 4, 1, 0), nn.BatchNorm2d(g_dim), nn.Tanh())  # 4 -> 1

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h1 = self.c1(x)  # (B, c1, 32, 32)
        h2 = self.c2(h1)  # (B, c2, 16, 16)
        h3 = self.c3(h2)  # (B, c3, 8, 8)
        h4 = self.c4(h3)  # (B, c4, 4, 4)
        h5 = self.c5(h4)  # (B, g_dim, 1, 1)
        return h5.reshape(h5.shape[0], self.g_dim), [h1, h2, h3, h4]  # (B, g_dim, 1, 1) -> (B, g_dim)


class DCGANDecoder(nn.Module):
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
        self.upc2 = dcgan_upconv(c4 * 2, c3)  # 4 -> 8
        self.upc3 = dcgan_upconv(c3 * 2, c2)  # 8 -> 16
        self.upc4 = dcgan_upconv(c2 * 2, c1)  # 16 -> 32
        self.upc5 = nn.ConvTranspose2d(c1 * 2, nc, 4, 2, 1)  # 32 -> 64

    def forward(self, h: torch.Tensor, skips: list[torch.Tensor], logits: bool = False) -> torch.Tensor:
        """Decode; ``logits=True`` returns the pre-sigmoid output (for the residual variant)."""
        d1 = self.upc1(h.reshape(h.shape[0], self.g_dim, 1, 1))  # (B, g_dim) -> (B, g_dim, 1, 1) -> (B, c4, 4, 4)
        d2 = self.upc2(torch.cat([d1, skips[3]], 1))  # (B, c3, 8, 8)
        d3 = self.upc3(torch.cat([d2, skips[2]], 1))  # (B, c2, 16, 16)
        d4 = self.upc4(torch.cat([d3, skips[1]], 1))  # (B, c1, 32, 32)
        out = self.upc5(torch.cat([d4, skips[0]], 1))  # (B, nc, 64, 64)
        return out if logits else torch.sigmoid(out)
