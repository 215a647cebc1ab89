"""SVG-family video models: backbones, recurrent cells, the stepping model and its presets.

The torch modules are imported on first use (PEP 562 ``__getattr__``), so importing the configs
(`bair_world.models.config`, e.g. for a command's ``--help``) does not load torch.
"""

import importlib

from bair_world.models.config import PRESETS, ModelConfig, preset

_LAZY = {
    "DCGANDecoder": "dcgan64", "DCGANEncoder": "dcgan64",
    "LSTM": "lstm", "GaussianLSTM": "lstm", "standard_normal": "lstm",
    "SVG": "svg", "StepOutput": "svg", "SVGState": "svg", "init_weights": "svg", "kl_gaussian": "svg",
    "VGGDecoder": "vgg64", "VGGEncoder": "vgg64",
}

__all__ = ["PRESETS", "ModelConfig", "preset", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"bair_world.models.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'bair_world.models' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
