"""`WorldOptions`: what every world env (`BairWorld-v0`, its vector env, `BairWorldGoal-v0`, and the
true world's `PushWorld-v0` / `PushWorldGoal-v0`, which use its references and checkpoint) is
made of, documented once. The context length is always the checkpoint's ``n_past``.

The envs take these as keyword arguments, so ``gym.make("BairWorld-v0", checkpoint=..., device=...)``
passes them straight through; an unknown keyword is a ``TypeError`` naming it. The env builds one
`WorldOptions` (each field's type and range checked on construction: a TypeError or ValueError naming
the option and the value) and hands it to `bair_world.envs.episodes.EpisodeBatch`, which loads the model and
the references. The ``check_*_option`` functions type the envs' other options the same way. Adding an option: a field here (with its docstring), used in `EpisodeBatch`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bair_world.configtypes import is_int, is_number

if TYPE_CHECKING:  # torch and the references load with the env, not with this module
    import torch

    from bair_world.envs.references import ReferenceSource


MAX_REFERENCES = 10**9  # the built-in world's sequence seeds; a pool is generated lazily, one rollout at a time


def check_int_option(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int in [low, high]: an integer, never a bool, float or string (``2.5`` would be
    truncated, ``True`` read as 1, ``"3"`` fail later without the option's name).

    Raises:
        TypeError: not an integer; ValueError: out of range. Both name the option and the value.
    """
    if not is_int(value):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high:,}]"
        raise ValueError(f"{name} must be an integer {bounds}, got {value!r}")
    return int(value)


def check_number_option(name: str, value: Any, low: float, *, above: bool = False) -> float:
    """``value`` as a finite float >= ``low`` (> with ``above``): a number, never a bool or string.

    Raises:
        TypeError: not a number; ValueError: NaN, infinite or out of range. Both name the option.
    """
    if not is_number(value):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value) or value < low or (above and value == low):
        raise ValueError(f"{name} must be a finite number {'>' if above else '>='} {low:g}, got {value!r}")
    return float(value)


def check_bool_option(name: str, value: Any) -> bool:
    """``value`` if it is a bool (``"no"`` or 0 are refused: ``bool("no")`` is True), else TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_path_option(name: str, value: Any) -> None:
    """TypeError naming ``name`` unless ``value`` is None, a string or a path."""
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path or None, got {value!r} ({type(value).__name__})")


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

    def __post_init__(self):
        check_path_option("checkpoint", self.checkpoint)
        check_path_option("data_root", self.data_root)
        if not isinstance(self.split, str):
            raise TypeError(f"split must be a string such as 'test', got {self.split!r}")
        check_int_option("num_references", self.num_references, 1, MAX_REFERENCES)
        for name in ("device", "precision"):
            value = getattr(self, name)
            if not isinstance(value, str) and type(value).__name__ != "device":  # torch.device, not imported here
                raise TypeError(f"{name} must be a string such as 'cpu', got {value!r} ({type(value).__name__})")
        check_bool_option("compile", self.compile)
        if self.references is not None:
            from bair_world.references import ReferenceSource

            if not isinstance(self.references, ReferenceSource):
                raise TypeError(f"references must be a ReferenceSource or None, got {type(self.references).__name__}")

    def reference_pool(self) -> ReferenceSource:
        """The references these options name: ``references``, else ``data_root``'s ``split``, else the
        built-in world's first ``num_references`` rollouts."""
        from bair_world.envs.references import make_references

        if self.references is not None:
            return self.references
        return make_references(self.data_root, self.split, self.num_references)
