"""Which seed made each sequence of a synthetic dataset: the one rule (`sequence_seed`) and the readers
of the seeds and the data policy a dataset recorded (`recorded_seeds`, `recorded_policy`), so held-out
folders and packs can be started in the true pushing world (`bair_world.sim.start_world`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bair_world.data.bair_folder import SPLITS
from bair_world.data.errors import DataError

MANIFEST = "manifest.json"


def sequence_seed(seed: int, split: str, index: int) -> int:
    """Deterministic 64-bit seed of sequence `index` of `split`."""
    state = np.random.SeedSequence([seed, SPLITS.index(split), index]).generate_state(2)
    return int(state[0]) | (int(state[1]) << 32)


def _provenance(root: Path) -> tuple[Path, dict] | None:
    """(file, the generator's manifest) of a synthetic dataset: ``manifest.json`` of a folder dataset,
    the ``source`` of a packed one (written by `write_packed`) or its ``source.manifest`` (packed from
    a folder); None for other data."""
    from bair_world.data.packed import MANIFEST as PACKED

    for path, keys in ((root / MANIFEST, ()), (root / PACKED, ("source",)), (root / PACKED, ("source", "manifest"))):
        if not path.is_file():
            continue
        try:
            info = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        for key in keys:
            info = info.get(key) if isinstance(info, dict) else None
        if isinstance(info, dict) and info.get("generator") == "bair_world.sim":
            return path, info
    return None


def recorded_seeds(root: str | Path, split: str) -> list[int] | None:
    """The seed of every sequence of ``split`` (in the dataset's sorted order), or None when ``root``
    is not a synthetic dataset (real BAIR).

    Read from the manifest's ``sequence_seeds``; datasets written before seeds were recorded get
    them derived from the manifest's dataset seed (`sequence_seed`), the same numbers. Whoever
    starts a world from them checks its frames against the recording (`bair_world.sim.start_world`).
    """
    found = _provenance(Path(root))
    if found is None:
        return None
    _, info = found
    seeds = (info.get("sequence_seeds") or {}).get(split)
    if seeds is None:
        count = int((info.get("counts") or {}).get(split, 0))
        seeds = [sequence_seed(int(info["seed"]), split, i) for i in range(count)]
    return [int(s) for s in seeds]


def recorded_policy(root: str | Path) -> str:
    """The data policy (`bair_world.sim.policy.POLICIES`) a synthetic dataset's sequences were made with:
    its manifest's ``policy``; ``scripted`` when it has none (written before policies were recorded; also
    for data that is not synthetic, which has no seeds to start a world from anyway).

    Raises:
        DataError: the manifest names no known policy (naming the manifest).
    """
    from bair_world.sim.policy import DEFAULT_POLICY, POLICIES

    found = _provenance(Path(root))
    if found is None:
        return DEFAULT_POLICY
    path, info = found
    policy = info.get("policy", DEFAULT_POLICY)
    if policy not in POLICIES:
        raise DataError(path, f"unknown data policy {policy!r} (this bair-world knows {', '.join(POLICIES)})")
    return policy
