"""`WorldOptions`: what every world env (`BairWorld-v0`, its vector env, `BairWorldGoal-v0`, and the
true world's `PushWorld-v0` / `PushWorldGoal-v0`, which use its references and checkpoint) is
made of, documented once. The context length is always the checkpoint's ``n_past``.

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
    observations and PSNR stay uint8/float32. It trades tiny numeric differences from float32 for
    speed, most in a large vector env (measurements: docs/benchmarks.md, "Environment throughput").
    Same seed, same frames within a precision."""
    compile: bool = False
    """Run the model's step through ``torch.compile`` (inductor; needs a C++ compiler on CPU). The
    first step compiles; after that it pays off most for a single env or a small vector env
    (measurements: docs/benchmarks.md, "Environment throughput"). Frames equal the eager ones to
    float rounding, latents identical."""

    def reference_pool(self) -> ReferenceSource:
        """The references these options name: ``references``, else ``data_root``'s ``split``, else the
        built-in world's first ``num_references`` rollouts."""
        from bair_world.envs.references import make_references

        if self.references is not None:
            return self.references
        return make_references(self.data_root, self.split, self.num_references)
