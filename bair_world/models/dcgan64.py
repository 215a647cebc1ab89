"""DCGAN-64 encoder and decoder with skip connections (the lighter SVG backbone).

4x4 stride-2 convolutions halve the resolution 64 -> 32 -> 16 -> 8 -> 4, a final 4x4 conv gives the
tanh code; the decoder mirrors it with transposed convolutions and concatenated skips (the shared
skip pattern is in `bair_world.models.backbone`). ``width`` scales the channel counts 64/128/256/512.
"""

from __future__ import annotations

from torch import nn

from bair_world.models.backbone import SkipDecoder, SkipEncoder, code_head, code_stem, widths


def dcgan_conv(nin: int, nout: int) -> nn.Sequential:
    """4x4 stride-2 conv (halves the size) + BatchNorm + LeakyReLU(0.2)."""
    return nn.Sequential(nn.Conv2d(nin, nout, 4, 2, 1), nn.BatchNorm2d(nout), nn.LeakyReLU(0.2, inplace=True))


def dcgan_upconv(nin: int, nout: int) -> nn.Sequential:
    """4x4 stride-2 transposed conv (doubles the size) + BatchNorm + LeakyReLU(0.2)."""
    return nn.Sequential(
        nn.ConvTranspose2d(nin, nout, 4, 2, 1), nn.BatchNorm2d(nout), nn.LeakyReLU(0.2, inplace=True)
    )


class DCGANEncoder(SkipEncoder):
    """DCGAN-64 encoder: skips at 32, 16, 8, 4 px."""

    def __init__(self, g_dim: int, nc: int = 3, width: float = 1.0):
        super().__init__(g_dim)
        c1, c2, c3, c4 = widths(width)
        self.c1 = dcgan_conv(nc, c1)  # 64 -> 32
        self.c2 = dcgan_conv(c1, c2)  # 32 -> 16
        self.c3 = dcgan_conv(c2, c3)  # 16 -> 8
        self.c4 = dcgan_conv(c3, c4)  # 8 -> 4
        self.c5 = code_head(c4, g_dim)  # 4 -> 1
        self.down = nn.Identity()  # the stride-2 convolutions downsample


class DCGANDecoder(SkipDecoder):
    """DCGAN-64 decoder: stride-2 transposed convolutions, the last one straight to the image."""

    def __init__(self, g_dim: int, nc: int = 3, width: float = 1.0, cond_maps: int = 0):
        super().__init__(g_dim, cond_maps)
        c1, c2, c3, c4 = widths(width)
        e = self.extra
        self.upc1 = code_stem(g_dim, c4)  # 1 -> 4
        self.upc2 = dcgan_upconv(c4 * 2 + e, c3)  # 4 -> 8
        self.upc3 = dcgan_upconv(c3 * 2 + e, c2)  # 8 -> 16
        self.upc4 = dcgan_upconv(c2 * 2 + e, c1)  # 16 -> 32
        self.final_in = c1 * 2 + e
        self.upc5 = self.final_stage(nc)  # 32 -> 64
        self.up = nn.Identity()  # the stride-2 transposed convolutions upsample

    def final_stage(self, nout: int) -> nn.Module:
        return nn.ConvTranspose2d(self.final_in, nout, 4, 2, 1)
