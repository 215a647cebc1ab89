"""`ModelConfig` and the named presets (`tiny`, `cpu`, `seed`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from bair_world.configtypes import is_int, type_problems
from bair_world.shapes import CHANNELS, COND_DIM  # noqa: F401 (CHANNELS re-exported)

#: Fields that configs before issue 31 recorded although nothing could use another value (the
#: pipeline conditions on 4 action + 3 position values and reads RGB): still read, with exactly
#: these values, and dropped.
FIXED_FIELDS = {"cond_dim": COND_DIM, "channels": CHANNELS}

BACKBONES = ("vgg", "dcgan")
PRIORS = ("fixed", "learned")
SKIPS = ("last_context", "previous")
FLOW_HEADS = ("single", "pyramid")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of an SVG-family action-conditioned video model."""

    backbone: str = "dcgan"
    """Encoder/decoder: "vgg" (VGG-64, the seed's) or "dcgan" (DCGAN-64, lighter)."""
    width: float = 0.5
    """Channel multiplier of the encoder/decoder (1.0 = 64/128/256/512 channels)."""
    g_dim: int = 64
    """Size of the frame code h_t the encoder emits and the predictor LSTM outputs."""
    z_dim: int = 16
    """Size of the stochastic latent z_t."""
    rnn_size: int = 128
    """Hidden width of every LSTM (predictor, posterior, prior)."""
    predictor_layers: int = 2
    """Stacked LSTMCells in the frame predictor."""
    posterior_layers: int = 1
    """Stacked LSTMCells in the posterior q(z_t | x_t)."""
    prior_layers: int = 1
    """Stacked LSTMCells in the learned prior p(z_t | x_{t-1}) (unused with prior="fixed")."""
    prior: str = "fixed"
    """"fixed" = N(0, I) (SVG-FP, the seed) or "learned" = p(z_t | x_{t-1}) (SVG-LP)."""
    skip: str = "last_context"
    """Decoder skips: "last_context" keeps those of the last context frame (SVG), "previous"
    takes them from x_{t} at every step (the seed)."""
    n_past: int = 2
    """Context frames; with skip="last_context" the skips stop updating after frame n_past-1."""
    residual: bool = False
    """Predict the next frame as sigmoid(logit(x_t) + decoder logits), so a zero decoder output
    copies the last frame (not in the seed; helps short CPU training)."""
    motion: bool = False
    """Pixel-motion output (after Finn et al. 2016, SV2P): the next frame is mask * warp(x_t, flow)
    + (1 - mask) * the generated frame, with a dense flow field (at most ``max_flow`` pixels; ``flow_head`` says how it is predicted) and
    the mask from a second head on the decoder's last features; starts as the plain output."""
    spatial_cond: bool = False
    """Feed the normalised cond to the decoder as feature maps (broadcast, beside x/y coordinate
    channels) at every stage after the stem, so it can draw the arm where the end-effector
    position puts it (the LSTM code alone carries it through a 1x1 bottleneck). Not in the seed."""
    context_mask: bool = False
    """With ``motion``: a third mask composites the last real context frame, so pixels nothing
    touched stay exact: next = m_warp * warp(x_t, flow) + m_gen * generated + m_ctx * x_context
    (softmax masks); starts as the two-mask output. Not in the seed."""
    flow_head: str = "single"
    """With ``motion``: "single" (releases 1-3: the flow from one final decoder stage, warp mask
    starting shut) or "pyramid" (coarse-to-fine: predicted at 8x8, refined at 16, 32, 64 px, so it
    can learn moves of several pixels; masks starting open). See `bair_world.models.motion`."""
    max_flow: float = 4.0
    """Largest flow of the motion output, in pixels per step (the arm moves up to ~7 px a step)."""

    def __post_init__(self):
        problems = type_problems(self)
        if problems:  # the checks below assume the right types
            raise ValueError("invalid ModelConfig: " + "; ".join(problems))
        if self.backbone not in BACKBONES:
            problems.append(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.prior not in PRIORS:
            problems.append(f"prior must be one of {PRIORS}, got {self.prior!r}")
        if self.skip not in SKIPS:
            problems.append(f"skip must be one of {SKIPS}, got {self.skip!r}")
        if not self.width > 0:
            problems.append(f"width must be > 0, got {self.width}")
        for name in ("g_dim", "z_dim", "rnn_size", "predictor_layers", "posterior_layers", "prior_layers"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_past < 1:
            problems.append(f"n_past must be >= 1, got {self.n_past}")
        if self.flow_head not in FLOW_HEADS:
            problems.append(f"flow_head must be one of {FLOW_HEADS}, got {self.flow_head!r}")
        elif self.flow_head != "single" and not self.motion:
            problems.append(f"flow_head {self.flow_head!r} needs motion (it is the pixel-motion output's flow)")
        if not 0 < self.max_flow <= 32:
            problems.append(f"max_flow must be in (0, 32] pixels, got {self.max_flow}")
        if self.context_mask and not self.motion:
            problems.append("context_mask needs motion (it is a third mask of the pixel-motion output)")
        if problems:
            raise ValueError("invalid ModelConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (for checkpoints)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Inverse of `to_dict`; unknown keys are an error (a newer checkpoint format); `FIXED_FIELDS`
        are read (older configs) and dropped."""
        data = dict(data)
        for name, value in FIXED_FIELDS.items():
            given = data.pop(name, value)
            if not is_int(given) or given != value:
                raise ValueError(f"{name} must be {value} (the only value the pipeline supports), got {given!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig fields {unknown}")
        return cls(**data)

    def replace(self, **changes: Any) -> "ModelConfig":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, ModelConfig] = {
    # Seconds on CPU: for tests and smoke runs.
    "tiny": ModelConfig(backbone="dcgan", width=0.25, g_dim=32, z_dim=8, rnn_size=64),
    # A CPU-trainable default (2 cores, ~20 min to beat copy-last-frame; calibrated by training).
    "cpu": ModelConfig(backbone="dcgan", width=0.5, g_dim=64, z_dim=16, rnn_size=128, predictor_layers=2,
                       skip="previous", residual=True),
    # The lab report's recipe: VGG-64 full width, g=128, z=64, rnn=256, fixed prior, skips every step.
    "seed": ModelConfig(backbone="vgg", width=1.0, g_dim=128, z_dim=64, rnn_size=256, predictor_layers=2,
                        posterior_layers=1, prior_layers=1, prior="fixed", skip="previous"),
}


def model_preset(name: str, **overrides: Any) -> ModelConfig:
    """The named preset ("tiny", "cpu", "seed"), with optional field overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides)
