"""Which seed made each sequence of a synthetic dataset: the one rule (`sequence_seed`) and the reader
of the seeds a dataset recorded (`recorded_seeds`), so held-out folders and packs can be started in the
true pushing world (`bair_world.sim.start_world`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bair_world.data.bair_folder import SPLITS

MANIFEST = "manifest.json"


def sequence_seed(seed: int, split: str, index: int) -> int:
    """Deterministic 64-bit seed of sequence `index` of `split`."""
    state = np.random.SeedSequence([seed, SPLITS.index(split), index]).generate_state(2)
    return int(state[0]) | (int(state[1]) << 32)


def _provenance(root: Path) -> dict | None:
    """The generator's manifest of a synthetic dataset: ``manifest.json`` of a folder dataset, the
    ``source`` of a packed one (written by `write_packed`) or its ``source.manifest`` (packed from a
    folder); None for other data."""
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
            return info
    return None


def recorded_seeds(root: str | Path, split: str) -> list[int] | None:
    """The seed of every sequence of ``split`` (in the dataset's sorted order), or None when ``root``
    is not a synthetic dataset (real BAIR).

    Read from the manifest's ``sequence_seeds``; datasets written before seeds were recorded get
    them derived from the manifest's dataset seed (`sequence_seed`), the same numbers. Whoever
    starts a world from them checks its frames against the recording (`bair_world.sim.start_world`).
    """
    info = _provenance(Path(root))
    if info is None:
        return None
    seeds = (info.get("sequence_seeds") or {}).get(split)
    if seeds is None:
        count = int((info.get("counts") or {}).get(split, 0))
        seeds = [sequence_seed(int(info["seed"]), split, i) for i in range(count)]
    return [int(s) for s in seeds]
