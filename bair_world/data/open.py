"""`open_dataset`: a BAIR-format split as a dataset, whichever form its root holds.

Every reader (training, evaluation, rollouts, the envs' dataset references, examples) opens data
through it, so a new form is added here once.
"""

from __future__ import annotations

from pathlib import Path

from bair_world.data.bair_folder import BAIR_SEQ_LEN, BairFolderDataset
from bair_world.data.packed import PackedDataset, is_packed


def open_dataset(root: str | Path, split: str, seq_len: int = BAIR_SEQ_LEN, cache: bool = False,
                 targets: bool = False, stored: bool = False) -> BairFolderDataset | PackedDataset:
    """The split as a dataset, packed (`PackedDataset`) or folder layout (`BairFolderDataset`),
    whichever ``root`` holds; same items either way. ``cache``: keep decoded folder sequences in memory.
    ``targets``: items also hold the region ``"labels"`` and the true ``"flow"`` (data from the
    built-in pushing world only; a DataError naming the missing file otherwise). ``stored``: frames
    uint8 and flow int8 as stored, converted after cropping (training; `BairFolderDataset`)."""
    cls = PackedDataset if is_packed(root) else BairFolderDataset
    return cls(root, split, seq_len=seq_len, cache=cache, targets=targets, stored=stored)
