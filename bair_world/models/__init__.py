"""SVG-family video models: backbones, recurrent cells, the stepping model and its presets.

The torch modules are imported on first use (PEP 562 ``__getattr__``), so importing the configs
(`bair_world.models.config`, e.g. for a command's ``--help``) does not load torch.
"""

from bair_world.lazy import lazy_exports
from bair_world.models.config import PRESETS, ModelConfig, model_preset

_LAZY = {
    "DCGANDecoder": "dcgan64", "DCGANEncoder": "dcgan64",
    "LSTM": "lstm", "GaussianLSTM": "lstm", "standard_normal": "lstm",
    "SVG": "svg", "StepOutput": "svg", "SVGState": "svg", "init_weights": "svg", "kl_gaussian": "svg",
    "VGGDecoder": "vgg64", "VGGEncoder": "vgg64",
}

__all__ = ["PRESETS", "ModelConfig", "model_preset", *_LAZY]


__getattr__, __dir__ = lazy_exports("bair_world.models", _LAZY)
