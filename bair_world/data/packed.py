"""The packed dataset form: one array file per split and kind, memory-mapped, instead of ~32 files a sequence.

Layout (``FORMAT`` version ``FORMAT_VERSION``)::

    <root>/packed.json                    manifest: splits, their sequence count and length, provenance
    <root>/<split>/frames.npy             uint8   (N, T, 64, 64, 3) RGB
    <root>/<split>/actions.npy            float32 (N, T, 4)
    <root>/<split>/positions.npy          float32 (N, T, 3)
    <root>/<split>/labels.npy             uint8   (N, T, 64, 16), only if the source sequences had labels:
                                          the (64, 64) label maps (values 0..2), 2 bits a pixel, 4 pixels a byte
    <root>/<split>/flow.npy               int8    (N, T, 2, 64, 64), only if the source sequences had flow:
                                          the true flow in 1/8 pixel, as in ``flow.npz`` (`bair_world.data.flow`)
    <root>/<split>/poses.npy              float32 (N, T, 9, 3), only if the source sequences had poses:
                                          object poses by palette colour, as in ``poses.npz`` (`bair_world.data.poses`)

Sequence ``i`` of a split is sequence ``i`` of the folder layout's sorted listing, with the same
values bit for bit (PNG and the ``%.18e`` CSVs are lossless for uint8 frames and float32 numbers), so
`PackedDataset` items equal `BairFolderDataset` items. The BAIR folder layout stays the exchange
format; packing is a cache-friendly copy of it (``bair-world data pack SRC --out DST``) and the form of
the embedded default dataset. A pack is written into a hidden staging folder and renamed into place
when complete, and checked on opening (manifest, files, dtypes, shapes); problems raise `DataError`
naming the file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from bair_world.configtypes import is_int
from bair_world.data.bair_folder import (
    ACTIONS_FILE, BAIR_SEQ_LEN, LABELS_FILE, N_LABELS, SPLITS, list_sequences, read_labels, read_sequence,
    read_table,
)
from bair_world.data.batch import ACTION_DIM, IMAGE_SIZE, POSITION_DIM, frames_to_float, stored_frames
from bair_world.data.errors import DataError
from bair_world.data.files import require_regular_file
from bair_world.data.flow import FLOW_FILE, FLOW_STEP_SHAPE, dequantise_flow, missing_targets, quantise_flow, read_flow
from bair_world.data.poses import POSE_STEP_SHAPE, POSES_FILE, read_poses
from bair_world.data.npy_writer import NpyRowWriter
from bair_world.io import atomic_write_bytes, freed_line, fsync_directory, is_stale, size_of, temp_sibling

MANIFEST = "packed.json"
MAX_MANIFEST_BYTES = 1 << 20
MAX_SEQUENCES, MAX_LENGTH = 10_000_000, 10_000  # bounds on a manifest's counts (BAIR has 43,264 of 30)
FORMAT, FORMAT_VERSION = "bair-world-packed", 1
#: kind -> (dtype, shape of one step as stored)
KINDS = {"frames": (np.uint8, (IMAGE_SIZE, IMAGE_SIZE, 3)), "actions": (np.float32, (ACTION_DIM,)),
         "positions": (np.float32, (POSITION_DIM,)), "labels": (np.uint8, (IMAGE_SIZE, IMAGE_SIZE // 4)),
         "flow": (np.int8, FLOW_STEP_SHAPE), "poses": (np.float32, POSE_STEP_SHAPE)}
OPTIONAL = ("labels", "flow", "poses")  # kinds a split holds only when its manifest entry says so
TARGET_KINDS = ("labels", "flow")  # what ``targets=True`` (the motion losses) needs


def pack_labels(labels: np.ndarray) -> np.ndarray:
    """uint8 (..., 64, 64) labels in 0..3 -> (..., 64, 16): pixel 4j + k in bits 2k, 2k+1 of byte j."""
    labels = np.asarray(labels)
    if labels.dtype != np.uint8 or (labels.size and labels.max() > 3):
        raise ValueError(f"labels must be uint8 values 0..3 to pack in 2 bits, got {labels.dtype}")
    return labels[..., 0::4] | labels[..., 1::4] << 2 | labels[..., 2::4] << 4 | labels[..., 3::4] << 6


def unpack_labels(packed: np.ndarray) -> np.ndarray:
    """Inverse of `pack_labels`: (..., 64, 16) -> uint8 (..., 64, 64)."""
    packed = np.asarray(packed, np.uint8)
    parts = np.stack([(packed >> shift) & 3 for shift in (0, 2, 4, 6)], axis=-1)  # (..., 64, 16, 4)
    return parts.reshape(*packed.shape[:-1], packed.shape[-1] * 4)


def is_packed(root: str | Path) -> bool:
    """True when ``root`` holds a packed dataset (its manifest)."""
    return (Path(root) / MANIFEST).is_file()


class PackWriter:
    """Streams sequences into a packed dataset at ``dest``; use as a context manager.

    Arrays are files in a staging folder next to ``dest``, their whole size reserved on entering the
    ``with`` block (a full disk fails there, as an OSError naming the file and the bytes), filled one
    sequence at a time with ordinary writes (nothing is held in memory); leaving the block normally
    writes the manifest and renames the staging folder to ``dest``, an exception deletes it. Entering
    also removes the staging folders killed writers of ``dest`` left (`remove_stale_stages`; the line
    saying so is ``freed``).

    Args:
        dest: the packed dataset root to create (must not exist).
        counts: sequences per split; splits with 0 are left out.
        length: steps per sequence.
        labels: splits that carry region labels.
        source: provenance stored in the manifest (e.g. the generator's settings).
        flow: splits that carry the true flow.
        poses: splits that carry the objects' poses.
    """

    def __init__(self, dest: str | Path, counts: dict[str, int], length: int, labels: set[str] = frozenset(),
                 source: dict[str, Any] | None = None, flow: set[str] = frozenset(), poses: set[str] = frozenset()):
        self.dest = Path(dest)
        if self.dest.exists():
            raise FileExistsError(f"{self.dest}: already exists; packing writes a new folder")
        self.counts = {s: int(n) for s, n in counts.items() if n > 0}
        self.length, self.labels, self.source = int(length), set(labels) & set(self.counts), source or {}
        self.flow = set(flow) & set(self.counts)
        self.poses = set(poses) & set(self.counts)
        self._stage: Path | None = None
        self._arrays: dict[tuple[str, str], NpyRowWriter] = {}
        self.freed: str | None = None  # what entering removed of killed writers' staging folders

    def __enter__(self) -> PackWriter:
        try:
            return self._open_stage()
        except BaseException:  # e.g. no room for the arrays: leave nothing behind
            self._discard()
            raise

    def _open_stage(self) -> PackWriter:
        """Remove dead writers' staging folders of ``dest``, then make this one's with every array file's
        space reserved (`NpyRowWriter`: a sparse memory map would die of SIGBUS on a full disk), so a
        full disk is an OSError naming the file and the bytes, before any sequence is made."""
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self.freed = remove_stale_stages(self.dest)
        self._stage = temp_sibling(self.dest)  # named after this pid: a killed writer's is found and removed later
        self._stage.mkdir()
        for split, n in self.counts.items():
            (self._stage / split).mkdir()
            for kind, (dtype, step_shape) in KINDS.items():
                if kind not in OPTIONAL or split in getattr(self, kind):
                    try:
                        self._arrays[split, kind] = NpyRowWriter(
                            self._stage / split / f"{kind}.npy", dtype, (n, self.length, *step_shape),
                            name=self.dest / split / f"{kind}.npy")
                    except OSError as e:
                        raise OSError(e.errno, f"{e.strerror}; the whole pack needs {self.nbytes():,} bytes",
                                      e.filename) from None
        return self

    def nbytes(self) -> int:
        """Bytes of the pack's arrays (headers aside): what entering the ``with`` block reserves."""
        return sum(n * self.length * int(np.prod(step_shape)) * np.dtype(dtype).itemsize
                   for split, n in self.counts.items() for kind, (dtype, step_shape) in KINDS.items()
                   if kind not in OPTIONAL or split in getattr(self, kind))

    def _discard(self) -> None:
        """Close the array files and delete the staging folder (gone already after the rename)."""
        for array in self._arrays.values():
            array.close(sync=False)
        self._arrays.clear()
        if self._stage is not None and not self._stage.is_symlink():
            shutil.rmtree(self._stage, ignore_errors=True)

    def put(self, split: str, index: int, frames, actions, positions, labels=None, flow=None, poses=None) -> None:
        """Store sequence ``index`` of ``split`` (arrays of at least ``length`` steps; extra steps are cut).

        ``labels``: uint8 (T, 64, 64); ``flow``: float pixels (T, 64, 64, 2) as `bair_world.sim.rollout`
        gives it (stored quantised, `bair_world.data.flow.quantise_flow`); ``poses``: float32 (T, 9, 3);
        each required when the split carries it.
        """
        parts = {"frames": frames, "actions": actions, "positions": positions}
        for kind, value, encode in (("labels", labels, pack_labels), ("flow", flow, quantise_flow),
                                    ("poses", poses, np.asarray)):
            if split in getattr(self, kind):
                if value is None:
                    raise ValueError(f"{split}[{index}]: the split carries {kind}, this sequence has none")
                parts[kind] = encode(np.asarray(value)[: self.length])
        for kind, value in parts.items():
            self._arrays[split, kind].write_row(index, np.asarray(value)[: self.length])

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                for array in self._arrays.values():
                    array.close()  # fsynced, and checked to hold all its bytes
                manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "source": self.source,
                            "splits": {s: {"sequences": n, "length": self.length, "labels": s in self.labels,
                                           "flow": s in self.flow, "poses": s in self.poses}
                                       for s, n in self.counts.items()}}
                atomic_write_bytes(self._stage / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
                for folder in [self._stage, *(self._stage / split for split in self.counts)]:
                    fsync_directory(folder)
                os.rename(self._stage, self.dest)  # the pack appears complete or not at all
        finally:
            self._discard()


def remove_stale_stages(dest: Path) -> str | None:
    """Delete the staging folders (``.<name>.tmp-<pid>-<hex>``) that killed writers of ``dest`` left
    beside it (their pid no longer runs; never through a symlink); returns the line saying what was
    freed, or None."""
    dest = Path(dest)
    stale = [p for p in dest.parent.glob(f".{dest.name}.tmp-*") if p.is_dir() and not p.is_symlink() and is_stale(p)]
    nbytes = size_of(stale)
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return freed_line("staging folders of killed packs", stale, nbytes) if stale else None


def _manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.is_file():
        raise DataError(path, "missing: not a packed dataset (pack a folder dataset with `bair-world data pack`)")
    require_regular_file(path, "manifest")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise DataError(path, f"manifest of {path.stat().st_size:,} bytes (at most {MAX_MANIFEST_BYTES:,})")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: also a 5000-digit number
        raise DataError(path, f"unreadable manifest ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(path, f"not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(path, f"format version {manifest.get('format_version')!r}; this bair_world reads {FORMAT_VERSION}")
    splits = manifest.get("splits")
    if not isinstance(splits, dict):
        raise DataError(path, f'"splits" must be an object of split name -> entry, got {type(splits).__name__}')
    for name, entry in splits.items():
        if name not in SPLITS:  # also keeps every path inside the root (no "../../x")
            raise DataError(path, f"split name {name[:80]!r} is not one of {list(SPLITS)}")
        ok = isinstance(entry, dict) and all(is_int(entry.get(key)) for key in ("sequences", "length"))
        if not ok or not isinstance(entry.get("labels"), bool) or not all(
                isinstance(entry.get(k, False), bool) for k in ("flow", "poses")):
            raise DataError(path, f"split {name!r}: malformed entry {str(entry)[:200]} (expected sequences and "
                                  f"length as integers, labels and flow true/false)")
        if not (0 <= entry["sequences"] <= MAX_SEQUENCES and 1 <= entry["length"] <= MAX_LENGTH):
            raise DataError(path, f"split {name!r}: {entry['sequences']} sequences of {entry['length']} steps is "
                                  f"out of range (0..{MAX_SEQUENCES:,} of 1..{MAX_LENGTH:,})")
    return manifest


class PackedSplit:
    """One split of a packed dataset, checked and memory-mapped (read-only).

    Attributes:
        frames, actions, positions: the split's arrays, (N, T, ...) as in the module docstring.
        labels: the stored 2-bit labels, uint8 (N, T, 64, 16) (`unpack_labels` gives the maps), or None.
        flow: the stored flow, int8 (N, T, 2, 64, 64) (`bair_world.data.flow.dequantise_flow` gives
            pixels), or None (also for packs written before flow, whose manifest has no "flow").
        poses: float32 (N, T, 9, 3) object poses (`bair_world.data.poses`), or None (packs written
            before poses were recorded).
    """

    def __init__(self, root: str | Path, split: str):
        self.root, self.split = Path(root), split
        entry = _manifest(self.root).get("splits", {}).get(split)
        if entry is None:
            raise DataError(self.root / MANIFEST, f"holds no split {split!r}")
        n, self.length = entry["sequences"], entry["length"]  # checked by _manifest
        arrays = {kind: self._open(kind, n) for kind in KINDS if kind not in OPTIONAL or entry.get(kind, False)}
        self.frames, self.actions, self.positions = arrays["frames"], arrays["actions"], arrays["positions"]
        self.labels, self.flow, self.poses = arrays.get("labels"), arrays.get("flow"), arrays.get("poses")

    def _open(self, kind: str, n: int) -> np.ndarray:
        path = self.root / self.split / f"{kind}.npy"
        dtype, step_shape = KINDS[kind]
        expected = (n, self.length, *step_shape)
        require_regular_file(path, f"{kind} array of split {self.split!r}")  # a FIFO would block forever
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, OverflowError) as exc:  # truncated, not an .npy file, a negative shape
            raise DataError(path, f"unreadable {kind} array ({exc})") from None
        if array.dtype != dtype or array.shape != expected:
            raise DataError(path, f"{kind} array is {array.dtype} {array.shape}, the manifest says "
                                  f"{np.dtype(dtype)} {expected}")
        if not array.flags.c_contiguous:  # fortran_order: True would scramble every frame
            raise DataError(path, f"{kind} array is not in C order (its header says fortran_order: True); "
                                  f"repack the dataset")
        return array

    def __len__(self) -> int:
        return len(self.frames)


def check_finite_conds(data: "PackedSplit", folder: Path) -> None:
    """Refuse a split whose actions or positions hold NaN or inf (small: (N, T, 4) floats; a non-finite
    value would reach the model's condition and the env's info), naming the file, sequence and step."""
    for kind in ("actions", "positions"):
        array = getattr(data, kind)
        bad = np.argwhere(~np.isfinite(array))
        if len(bad):
            i, t = bad[0][:2]
            raise DataError(folder / f"{kind}.npy", f"sequence {i}, step {t} holds "
                            f"{array[i, t].tolist()} ({len(bad)} non-finite values)")


class PackedDataset(Dataset):
    """A packed split with `BairFolderDataset`'s items: ``{"frames": float32 (T, 3, 64, 64) in [0, 1],
    "actions": (T, 4), "positions": (T, 3)}``, the first ``seq_len`` steps of sequence ``index``; with
    ``targets=True`` also ``"labels"`` (uint8 (T, 64, 64)) and ``"flow"`` (float32 (T, 2, 64, 64) pixels),
    and a split without them is refused (a DataError naming the missing array). ``stored=True``: as
    `BairFolderDataset`'s, frames uint8 (T, 3, 64, 64) and flow int8 as stored.

    Reads one sequence per item from the memory-mapped arrays, so memory holds only what the OS
    page cache keeps; ``cache`` is accepted for `BairFolderDataset`'s signature and has no effect.
    """

    def __init__(self, root: str | Path, split: str, seq_len: int = BAIR_SEQ_LEN, cache: bool = False,
                 targets: bool = False, stored: bool = False):
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        self.root, self.split, self.seq_len, self.targets = Path(root), split, seq_len, targets
        self.stored = stored
        self.data = PackedSplit(root, split)
        if targets:
            for kind in TARGET_KINDS:
                if getattr(self.data, kind) is None:
                    raise missing_targets(self.root / split / f"{kind}.npy")
        check_finite_conds(self.data, self.root / split)
        if self.data.length < seq_len:
            raise DataError(self.root / split / "actions.npy",
                            f"sequences have {self.data.length} steps, expected at least {seq_len}")

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} sequences in {self.root / self.split}")
        t = self.seq_len
        frames = self.data.frames[index, :t]  # (T, 64, 64, 3) uint8, in the map
        item = {"frames": stored_frames(frames) if self.stored else frames_to_float(np.array(frames)),
                "actions": torch.from_numpy(np.array(self.data.actions[index, :t])),
                "positions": torch.from_numpy(np.array(self.data.positions[index, :t]))}
        if self.targets:
            item["labels"] = torch.from_numpy(self.labels(index))
            flow = np.array(self.data.flow[index, :t])  # copy out of the map: (T, 2, 64, 64) int8
            item["flow"] = torch.from_numpy(flow if self.stored else dequantise_flow(flow))
        return item

    def labels(self, index: int) -> np.ndarray | None:
        """Region labels of sequence ``index``, uint8 (seq_len, 64, 64), or None without labels."""
        if self.data.labels is None:
            return None
        labels = unpack_labels(self.data.labels[index, : self.seq_len])
        if labels.size and labels.max() >= N_LABELS:
            raise DataError(self.root / self.split / "labels.npy",
                            f"sequence {index} holds label value {int(labels.max())}, outside 0..{N_LABELS - 1}")
        return labels

    def __repr__(self) -> str:
        return f"PackedDataset(root={str(self.root)!r}, split={self.split!r}, seq_len={self.seq_len}, n={len(self)})"


def pack_dataset(src: str | Path, dest: str | Path, progress: bool = True) -> Path:
    """Pack a BAIR folder dataset into ``dest`` (created; atomically), streaming one sequence at a time.

    Every split folder present is packed; all its sequences must have the same length. Labels (flow)
    are carried when the split's first sequence has ``labels.npz`` (``flow.npz``), and then every
    sequence must have one; the flow's stored int8 values are copied exactly.

    Raises:
        DataError: a malformed sequence (naming its file), unequal lengths, labels or flow on some
            sequences only.
        FileExistsError: ``dest`` exists.
    """
    src = Path(src)
    listing = {s: list_sequences(src, s) for s in SPLITS if (src / s).is_dir()}
    if not listing:
        raise DataError(src, f"holds none of the split folders {list(SPLITS)}")
    lengths = {len(read_table(seqs[0] / ACTIONS_FILE, ACTION_DIM)) for seqs in listing.values()}
    if len(lengths) != 1:
        raise DataError(src, f"splits have different sequence lengths {sorted(lengths)}; a pack holds one")
    with_labels = {s for s, seqs in listing.items() if read_labels(seqs[0]) is not None}
    with_flow = {s for s, seqs in listing.items() if read_flow(seqs[0]) is not None}
    with_poses = {s for s, seqs in listing.items() if read_poses(seqs[0]) is not None}
    source: dict[str, Any] = {"packed_from": src.resolve().name}
    if (src / "manifest.json").is_file():  # the synthetic generator's settings
        size = (src / "manifest.json").stat().st_size
        if size > MAX_MANIFEST_BYTES // 2:  # copied into packed.json, whose reader would refuse the pack
            raise DataError(src / "manifest.json", f"{size:,} bytes; a dataset manifest is a few KB (packing copies "
                                                   f"it into {MANIFEST}, at most {MAX_MANIFEST_BYTES // 2:,} of it)")
        try:
            source["manifest"] = json.loads((src / "manifest.json").read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(src / "manifest.json", f"unreadable ({exc})") from None
    length = lengths.pop()
    total = sum(len(seqs) for seqs in listing.values())
    with PackWriter(dest, {s: len(seqs) for s, seqs in listing.items()}, length, with_labels, source,
                    flow=with_flow, poses=with_poses) as writer, \
            tqdm(total=total, desc="pack", unit="seq", disable=not progress) as bar:
        if writer.freed:
            print(writer.freed, file=sys.stderr)
        for split, seqs in listing.items():
            for index, seq in enumerate(seqs):
                frames, actions, positions = read_sequence(seq, None)
                if len(frames) != length:
                    raise DataError(seq / ACTIONS_FILE, f"has {len(frames)} rows; the dataset's sequences have {length}")
                labels = read_labels(seq, length) if split in with_labels else None
                if split in with_labels and labels is None:
                    raise DataError(seq / LABELS_FILE, f"missing, while other sequences of {split!r} have labels")
                flow = read_flow(seq, length) if split in with_flow else None
                if split in with_flow and flow is None:
                    raise DataError(seq / FLOW_FILE, f"missing, while other sequences of {split!r} have flow")
                flow = None if flow is None else np.moveaxis(flow, 1, -1)  # (T, 2, 64, 64) -> (T, 64, 64, 2), exact
                poses = read_poses(seq, length) if split in with_poses else None
                if split in with_poses and poses is None:
                    raise DataError(seq / POSES_FILE, f"missing, while other sequences of {split!r} have poses")
                writer.put(split, index, frames, actions, positions, labels, flow, poses)
                bar.update()
    return Path(dest)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `bair-world data pack`."""
    parser.add_argument("src", help="BAIR folder dataset root (train/, validate/, test/)")
    parser.add_argument("--out", required=True, help="packed dataset root to create")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """`bair-world data pack`: pack a folder dataset and summarise what was written."""
    out = pack_dataset(args.src, args.out, progress=not args.no_progress)  # cut short: the staging folder is removed
    files = [p for p in out.rglob("*") if p.is_file()]
    splits = json.loads((out / MANIFEST).read_text())["splits"]
    print(f"{out}: " + ", ".join(f"{s} {e['sequences']}" for s, e in splits.items()) +
          f" sequences in {len(files)} files, {sum(p.stat().st_size for p in files) / 2**20:.1f} MiB")
    return 0
