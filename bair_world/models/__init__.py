"""SVG-family video models: backbones, recurrent cells, the stepping model and its presets."""

from bair_world.models.config import PRESETS, ModelConfig, preset
from bair_world.models.dcgan64 import DCGANDecoder, DCGANEncoder
from bair_world.models.lstm import LSTM, GaussianLSTM, standard_normal
from bair_world.models.svg import SVG, StepOutput, SVGState, init_weights, kl_gaussian
from bair_world.models.vgg64 import VGGDecoder, VGGEncoder

__all__ = [
    "PRESETS", "ModelConfig", "preset", "DCGANDecoder", "DCGANEncoder", "LSTM", "GaussianLSTM",
    "standard_normal", "SVG", "StepOutput", "SVGState", "init_weights", "kl_gaussian", "VGGDecoder", "VGGEncoder",
]
