"""The one rule that turns (seed, sequence index, sample) into the latent noise of a rollout.

`training/evaluate.py` seeds the latent generator of sequence ``i``, draw ``s`` with
``latent_seed(seed, i, s)``; ``BairWorld-v0`` accepts the same number as the reset option
``latent_seed`` and `bair_world.envs.replay_psnr` passes it, so replaying a sequence's own actions
through the env draws exactly the latents evaluation draws: one stepping core, one answer.
"""

from __future__ import annotations

import numpy as np
import torch


def latent_seed(seed: int, index: int, sample: int = 0) -> int:
    """Seed of the latent generator of sequence ``index``, draw ``sample``, under run seed ``seed``.

    Independent streams for every (seed, index, sample) via `numpy.random.SeedSequence`, so results
    do not depend on batching, the order sequences are visited in, or how many samples are drawn.

    Raises:
        ValueError: a negative argument (SeedSequence entropy must be non-negative).
    """
    values = (int(seed), int(index), int(sample))
    if min(values) < 0:
        raise ValueError(f"latent_seed needs non-negative seed, index and sample, got {values}")
    return int(np.random.SeedSequence(list(values)).generate_state(1)[0])


def latent_generators(seed: int, indices, sample: int = 0) -> list[torch.Generator]:
    """One CPU `torch.Generator` per sequence index, seeded with `latent_seed`."""
    return [torch.Generator().manual_seed(latent_seed(seed, i, sample)) for i in indices]
