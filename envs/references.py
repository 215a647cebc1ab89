"""The environments' reset rule over reference rollouts (`pick_reference`, `reset_index`, option checks).

The references themselves (`Reference`, `ReferenceSource`, `SimReferences`, `FolderReferences`,
`make_references`) are defined once in the core, `bair_world.references`, and re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Sequence

import numpy as np

from bair_world.envs.spaces import check_latent_seed
from bair_world.references import (SIM_SEED_OFFSET, FolderReferences, Reference, ReferenceSource,  # noqa: F401 (re-exported)
                                   SimReferences, make_references)


def check_index(index: Any, count: int) -> int:
    """A reset option ``index`` as an int in [0, count): "3", 1.5 or True are refused, not coerced.

    Raises:
        ValueError: not an int; IndexError: out of range.
    """
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
        raise ValueError(f"reset option 'index' must be an int in [0, {count}), got {index!r}")
    if not 0 <= index < count:
        raise IndexError(f"reset option 'index' {index} is out of range [0, {count})")
    return int(index)


def check_reset_options(options: dict | None, accepted: Sequence[str], env_name: str) -> dict:
    """``options`` (None: {}) if it is a dict holding only ``accepted`` names.

    Raises:
        TypeError: ``options`` is not a dict (``options=5``, ``"index"`` or ``["index"]``).
        ValueError: naming the names ``env_name`` does not accept.
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"{env_name}: reset options must be a dict such as {{{accepted[0]!r}: 3}}, got "
                        f"{str(options)[:80]!r} ({type(options).__name__})")
    unknown = sorted(map(str, set(options) - set(accepted)))
    if unknown:
        raise ValueError(f"unknown reset options {unknown}; {env_name} accepts "
                         + ", ".join(repr(name) for name in accepted))
    return options


def pick_reference(np_random: np.random.Generator, count: int, index: Any = None,
                   latent_seed: Any = None) -> tuple[int, int]:
    """The one rule every env resets by: (reference index, latent torch seed).

    ``index`` None is drawn from ``np_random``, else checked (`check_index`). The torch seed is drawn
    in every world (the true world ignores it) and whatever the options, so the same seed picks the
    same reference everywhere and later resets do not depend on the options; ``latent_seed`` (an
    int) then replaces it.

    Raises:
        ValueError / IndexError: a bad ``index`` or ``latent_seed``.
    """
    index = int(np_random.integers(count)) if index is None else check_index(index, count)
    torch_seed = int(np_random.integers(2**63 - 1))
    if latent_seed is not None:
        torch_seed = check_latent_seed(latent_seed)
    return index, torch_seed


def reset_index(np_random: np.random.Generator, options: dict | None, count: int, env_name: str,
                latent_seed_option: bool = False) -> tuple[int, int]:
    """(reference index, latent torch seed) for a single env's reset: `pick_reference` by its options.

    ``options`` may hold ``"index"`` (and ``"latent_seed"`` where ``latent_seed_option``).

    Raises:
        ValueError: an option the env does not accept, a bad ``index`` or ``latent_seed``.
    """
    accepted = ("index", "latent_seed") if latent_seed_option else ("index",)
    options = check_reset_options(options, accepted, env_name)
    return pick_reference(np_random, count, options.get("index"), options.get("latent_seed"))
