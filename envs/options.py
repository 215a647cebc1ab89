"""`WorldOptions`: what every learned-model env (`BairWorld-v0`, its vector env, `BairWorldGoal-v0`)
is made of, documented once.

The envs take these as keyword arguments, so ``gym.make("BairWorld-v0", checkpoint=..., device=...)``
passes them straight through; an unknown keyword is a ``TypeError`` naming it. The env builds one
`WorldOptions` and hands it to `bair_world.envs.episodes.EpisodeBatch`, which loads the model and
the references. Adding an option: a field here (with its docstring), used in `EpisodeBatch`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch and the references load with the env, not with this module
    import torch

    from bair_world.envs.references import ReferenceSource


@dataclass(frozen=True, kw_only=True)
class WorldOptions:
    """The model, the references it replays, and how the model runs."""

    checkpoint: str | Path | None = None
    """Checkpoint directory; None loads the bundled ``bair_world/checkpoints/default``."""
    data_root: str | Path | None = None
    """Replay the sequences of ``<data_root>/<split>/`` (BAIR folder layout) instead of the built-in
    pushing world."""
    split: str = "test"
    """Split of ``data_root`` to replay."""
    device: str | torch.device = "auto"
    """"auto" (CUDA when available), "cpu", "cuda", "cuda:N"."""
    num_references: int = 10_000
    """How many built-in-world rollouts ``reset`` picks from (ignored with ``data_root``)."""
    references: ReferenceSource | None = None
    """A ready `ReferenceSource` (overrides ``data_root``, ``split`` and ``num_references``)."""
    precision: str = "float32"
    """"float32" (default: exact, reproducible), "bfloat16" (CPU or CUDA) or "float16" (CUDA only):
    the model runs under ``torch.autocast`` in that dtype (`bair_world.world_model.WorldModel`);
    observations and PSNR stay uint8/float32. It trades tiny numeric differences (at most 2/255
    per pixel from float32 over 28 steps with the bundled model, same PSNR to 0.01 dB) for speed:
    on a CPU with AVX512-BF16 about 2x the steps/s of a 64-env vector env and ~1.2x for a single
    env. Same seed, same frames within a precision."""
    compile: bool = False
    """Run the model's step through ``torch.compile`` (inductor; needs a C++ compiler on CPU). The
    first step compiles (~5 s); after that a single env makes ~1.8x the eager steps/s in float32
    and in bfloat16 (docs/benchmarks.md); frames equal the eager ones to float rounding, latents
    identical."""
