"""The embedded default dataset: the built-in pushing world's data, generated once into a cache folder.

`default_data_root` is what every command reads when no ``--data-root`` is given: the whole default
set (training) or one holding a split (`default_split_root`: evaluation, rollouts). The cache is
`cache_dir` (``$BAIR_WORLD_CACHE`` or ``~/.cache/bair_world``); its folders are named by generator
version, data format (`DATA_FORMAT`), seed and counts, written under a lock, and a killed
generation's leftovers are freed by the
next caller (`clean_cache`).
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
from pathlib import Path

from bair_world.data import synthetic
from bair_world.data.bair_folder import SPLITS
from bair_world.data.packed import is_packed
from bair_world.data.synthetic import checked_counts
from bair_world.io import freed_line, is_stale, size_of
from bair_world.pidlock import PidLock, stale_lock_files
from bair_world.sim import GENERATOR_VERSION

#: packed on disk, 30 steps: 368,640 B of raw frames + 245,760 B of int8 flow + 30,720 B of 2-bit labels
#: + 3,240 B of object poses + 840 B of actions/positions (~649,300 B a sequence with the .npy headers)
BYTES_PER_SEQUENCE = 649_300
#: in the cache folder's name beside the generator version (which describes the frames): what the packs
#: hold besides them; caches written before flow and poses were recorded have another name and are not
#: reused (the frames of a seed are the same: only the extra arrays differ)
DATA_FORMAT = "flow-poses"


def cache_dir() -> Path:
    """`$BAIR_WORLD_CACHE` or `~/.cache/bair_world`."""
    env = os.environ.get("BAIR_WORLD_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "bair_world"


def clean_cache(base: Path) -> str | None:
    """Remove the cache's staging folders of dead processes (a killed generation: up to 5.5 GB) and
    unheld lock files; returns the line saying what was freed, or None."""
    stale = [p for p in base.glob(".*.tmp-*") if p.is_dir() and not p.is_symlink() and is_stale(p)]
    nbytes = size_of(stale)
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    removed = stale + stale_lock_files(base)
    return freed_line("staging folders and locks of dead processes", removed, nbytes) if removed else None


def default_dataset_root(create: bool = True, seed: int = synthetic.DEFAULT_SEED,
                         counts: dict[str, int] | None = None, workers: int | None = None, progress: bool = True) -> Path:
    """The cached synthetic dataset used by default for training, evaluation and tests, packed.

    The folder is named by generator version, `DATA_FORMAT`, seed and counts, generated on first use in
    the packed form (`write_packed`: 16 files instead of ~34 per sequence; read memory-mapped) under an
    exclusive file lock, so concurrent callers wait for one generation instead of racing.

    Args:
        create: generate the dataset if it does not exist yet; otherwise just return the path.
    """
    counts = checked_counts(synthetic.DEFAULT_COUNTS if counts is None else counts)
    name = (f"synth-v{GENERATOR_VERSION}-{DATA_FORMAT}-seed{seed}-" + "-".join(f"{s}{counts[s]}" for s in SPLITS)
            + "-packed")
    base = cache_dir()
    final = base / name
    if is_packed(final) or not create:
        return final
    if base.exists() and not base.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "BAIR_WORLD_CACHE (or ~/.cache/bair_world) is a file, not a folder",
                                 str(base))
    base.mkdir(parents=True, exist_ok=True)
    freed = clean_cache(base)
    if freed:
        print(freed, file=sys.stderr)
    with PidLock(base / f".{name}.lock", wait=True):  # concurrent callers wait for one generation
        if not is_packed(final):  # another process may have finished while we waited
            # older versions' staging (no pid): dead, since we hold the lock every writer of `name` takes
            old = [p for p in base.glob(f".{name}.partial-*") if p.is_dir() and not p.is_symlink()]
            if old:
                nbytes = size_of(old)
                for path in old:
                    shutil.rmtree(path, ignore_errors=True)
                print(freed_line("staging folders of interrupted generations", old, nbytes), file=sys.stderr)
            total = sum(counts.values())
            print(f"generating the built-in pushing world's data once: {total} sequences "
                  f"({', '.join(f'{s} {n}' for s, n in counts.items() if n)}), about "
                  f"{total * BYTES_PER_SEQUENCE / 1e6:,.0f} MB, into {final} (set BAIR_WORLD_CACHE to move it)",
                  file=sys.stderr, flush=True)
            synthetic.write_packed(final, counts, seed=seed, workers=workers, progress=progress)
    return final


def default_data_root(data_root: str | Path | None, split: str | None = None, progress: bool = True) -> str | Path:
    """``data_root`` unchanged, or, when it is None, the embedded synthetic dataset (generated on
    first use): the whole default set for ``split=None`` (training), else one holding ``split``
    (`default_split_root`: evaluation and rollouts)."""
    if data_root is not None:
        return data_root
    return default_dataset_root(progress=progress) if split is None else default_split_root(split, progress)


def default_split_root(split: str, progress: bool = True) -> Path:
    """A cached default dataset holding ``split`` (what evaluation and rollouts read), generating
    only that split when the full default set does not exist yet.

    Sequence seeds depend on (seed, split, index) alone, so the split is identical to that of the
    full set; it lives in its own cache folder (named by its counts).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    full = default_dataset_root(create=False)
    if is_packed(full):
        return full
    counts = {s: synthetic.DEFAULT_COUNTS[s] if s == split else 0 for s in SPLITS}
    return default_dataset_root(counts=counts, progress=progress)
