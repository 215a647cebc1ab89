"""VGG-64 encoder and decoder with skip connections (Denton & Fergus 2018, the seed's backbone).

The encoder's stages are 3x3 conv blocks at 64, 32, 16 and 8 pixels with 2x2 max-pooling between
them; the decoder mirrors them with nearest upsampling and ends in a 3x3 transposed conv. The
shared skip pattern is in `bair_world.models.backbone`. ``width`` scales the channel counts
64/128/256/512 for a CPU-light variant.
"""

from __future__ import annotations

from torch import nn

from bair_world.models.backbone import SkipDecoder, SkipEncoder, code_head, code_stem, widths


def vgg_layer(nin: int, nout: int) -> nn.Sequential:
    """3x3 conv (same size) + BatchNorm + LeakyReLU(0.2)."""
    return nn.Sequential(nn.Conv2d(nin, nout, 3, 1, 1), nn.BatchNorm2d(nout), nn.LeakyReLU(0.2, inplace=True))


class VGGEncoder(SkipEncoder):
    """VGG-64 encoder: skips at 64, 32, 16, 8 px (``width`` 1.0 = the seed's channels)."""

    def __init__(self, g_dim: int, nc: int = 3, width: float = 1.0):
        super().__init__(g_dim)
        c1, c2, c3, c4 = widths(width)
        self.c1 = nn.Sequential(vgg_layer(nc, c1), vgg_layer(c1, c1))  # 64 x 64
        self.c2 = nn.Sequential(vgg_layer(c1, c2), vgg_layer(c2, c2))  # 32 x 32
        self.c3 = nn.Sequential(vgg_layer(c2, c3), vgg_layer(c3, c3), vgg_layer(c3, c3))  # 16 x 16
        self.c4 = nn.Sequential(vgg_layer(c3, c4), vgg_layer(c4, c4), vgg_layer(c4, c4))  # 8 x 8
        self.c5 = code_head(c4, g_dim)  # pooled to 4 x 4 -> 1
        self.down = nn.MaxPool2d(kernel_size=2, stride=2, padding=0)


class VGGDecoder(SkipDecoder):
    """VGG-64 decoder: nearest upsampling between 3x3 conv stages, a 3x3 transposed conv to the image."""

    def __init__(self, g_dim: int, nc: int = 3, width: float = 1.0, cond_maps: int = 0):
        super().__init__(g_dim, cond_maps)
        c1, c2, c3, c4 = widths(width)
        e = self.extra
        self.upc1 = code_stem(g_dim, c4)  # 1 -> 4
        self.upc2 = nn.Sequential(vgg_layer(c4 * 2 + e, c4), vgg_layer(c4, c4), vgg_layer(c4, c3))  # 8 x 8
        self.upc3 = nn.Sequential(vgg_layer(c3 * 2 + e, c3), vgg_layer(c3, c3), vgg_layer(c3, c2))  # 16 x 16
        self.upc4 = nn.Sequential(vgg_layer(c2 * 2 + e, c2), vgg_layer(c2, c1))  # 32 x 32
        self.final_in, self.final_mid = c1 * 2 + e, c1
        self.upc5 = self.final_stage(nc)  # 64 x 64
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def final_stage(self, nout: int) -> nn.Module:
        return nn.Sequential(vgg_layer(self.final_in, self.final_mid), nn.ConvTranspose2d(self.final_mid, nout, 3, 1, 1))
