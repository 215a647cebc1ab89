"""The original BAIR TFRecords (``softmotion30_44k``) and ``bair-world data convert`` to the folder layout.

Each ``traj_<a>_to_<b>.tfrecords`` file holds many records, one per trajectory; a record is a
``tf.train.Example`` with ``"{t}/image_aux1/encoded"`` (raw 64*64*3 uint8 RGB bytes), ``"{t}/action"``
(4 floats) and ``"{t}/endeffector_pos"`` (3 floats) for t = 0..29.

Records are framed and parsed here with the ``tfrecord`` package's protobuf classes, no TensorFlow.
The package's own reader checks no CRCs and raises a bare ``RuntimeError`` without the file name on
truncation, so the framing (length, masked CRC32C of length and of data) is read and verified here.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Iterator

import crc32c
import numpy as np
from google.protobuf.message import DecodeError
from tfrecord import example_pb2
from tqdm import tqdm

from bair_world.configtypes import is_int
from bair_world.data.bair_folder import (
    ACTIONS_FILE, BAIR_SEQ_LEN, POSITIONS_FILE, natural_key, remove_partial_writes, require_regular_file,
    write_sequence,
)
from bair_world.data.batch import ACTION_DIM, IMAGE_SIZE, POSITION_DIM
from bair_world.data.completion import check_resume, mark_complete, mark_incomplete
from bair_world.data.errors import DataError
from bair_world.io import atomic_write_json

_HEADER = struct.Struct("<QI")  # record length, masked CRC32C of the 8 length bytes
_FOOTER = struct.Struct("<I")  # masked CRC32C of the record data
_IMAGE_BYTES = IMAGE_SIZE * IMAGE_SIZE * 3
MANIFEST = "convert.json"
Sequence = tuple[np.ndarray, np.ndarray, np.ndarray]


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC32C of ``data``."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def scan_tfrecord(path: str | Path) -> list[int]:
    """Byte offsets of every record in ``path``, checking framing and length CRCs (data is not read).

    Raises:
        DataError: empty file, truncated file (a record runs past the end), or a corrupt length field.
    """
    path = Path(path)
    require_regular_file(path, "TFRecord file")  # a FIFO would block forever
    try:
        size = path.stat().st_size
        f = open(path, "rb")
    except OSError as exc:
        raise DataError(path, f"cannot open TFRecord file ({exc})") from exc
    offsets: list[int] = []
    with f:
        pos = 0
        if size == 0:
            raise DataError(path, "TFRecord file is empty")
        while pos < size:
            index = len(offsets)
            header = f.read(_HEADER.size)
            if len(header) < _HEADER.size:
                raise DataError(path, f"truncated TFRecord: record {index} header cut off at byte {size}")
            length, length_crc = _HEADER.unpack(header)
            if masked_crc32c(header[:8]) != length_crc:
                raise DataError(path, f"corrupt TFRecord: record {index} at byte {pos} has a bad length checksum")
            end = pos + _HEADER.size + length + _FOOTER.size
            if end > size:
                raise DataError(path, f"truncated TFRecord: record {index} at byte {pos} needs {end - pos} bytes, "
                                      f"file ends after {size - pos}")
            offsets.append(pos)
            pos = end
            f.seek(pos)
    return offsets


def read_record(f: BinaryIO, path: Path, offset: int, index: int) -> bytes:
    """Read and CRC-check the data of the record starting at ``offset`` in the open file ``f``."""
    f.seek(offset)
    header = f.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise DataError(path, f"truncated TFRecord: record {index} header cut off")
    length, _ = _HEADER.unpack(header)
    data = f.read(length)
    footer = f.read(_FOOTER.size)
    if len(data) < length or len(footer) < _FOOTER.size:
        raise DataError(path, f"truncated TFRecord: record {index} at byte {offset} is cut off")
    if masked_crc32c(data) != _FOOTER.unpack(footer)[0]:
        raise DataError(path, f"corrupt TFRecord: record {index} at byte {offset} fails its data checksum")
    return data


def _floats(features, key: str, n: int, path: Path, index: int) -> list[float]:
    if key not in features or features[key].WhichOneof("kind") != "float_list":
        raise DataError(path, f"record {index}: missing float feature {key!r}")
    values = features[key].float_list.value
    if len(values) != n:
        raise DataError(path, f"record {index}: {key!r} has {len(values)} values, expected {n}")
    return list(values)


def parse_bair_record(data: bytes, path: Path, index: int, seq_len: int = BAIR_SEQ_LEN) -> Sequence:
    """Decode one BAIR record -> (frames uint8 (T,64,64,3) RGB, actions float32 (T,4), positions float32 (T,3))."""
    example = example_pb2.Example()
    try:
        example.ParseFromString(data)
    except DecodeError as exc:
        raise DataError(path, f"record {index} is not a valid tf.train.Example ({exc})") from exc
    features = example.features.feature
    frames = np.empty((seq_len, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    actions = np.empty((seq_len, ACTION_DIM), dtype=np.float32)
    positions = np.empty((seq_len, POSITION_DIM), dtype=np.float32)
    for t in range(seq_len):
        key = f"{t}/image_aux1/encoded"
        if key not in features or features[key].WhichOneof("kind") != "bytes_list":
            raise DataError(path, f"record {index}: missing image feature {key!r}")
        raw = features[key].bytes_list.value
        if len(raw) != 1 or len(raw[0]) != _IMAGE_BYTES:
            got = sum(len(r) for r in raw)
            raise DataError(path, f"record {index}: {key!r} has {got} bytes, expected {_IMAGE_BYTES} (raw 64x64x3)")
        frames[t] = np.frombuffer(raw[0], dtype=np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE, 3)  # (12288,) -> HWC RGB
        actions[t] = _floats(features, f"{t}/action", ACTION_DIM, path, index)
        positions[t] = _floats(features, f"{t}/endeffector_pos", POSITION_DIM, path, index)
    if not (np.isfinite(actions).all() and np.isfinite(positions).all()):
        raise DataError(path, f"record {index}: actions or end-effector positions contain NaN or inf")
    return frames, actions, positions


def read_bair_tfrecord(path: str | Path, seq_len: int = BAIR_SEQ_LEN) -> Iterator[Sequence]:
    """Yield every trajectory of one BAIR ``.tfrecords`` file, in file order, with CRCs verified."""
    path = Path(path)
    offsets = scan_tfrecord(path)
    with open(path, "rb") as f:
        for index, offset in enumerate(offsets):
            yield parse_bair_record(read_record(f, path, offset, index), path, index, seq_len)


@dataclass
class ConvertConfig:
    """Settings of ``bair-world data convert``."""

    tfrecords: Path
    """The ``softmotion30_44k`` folder, holding ``train/`` and/or ``test/`` with ``traj_*_to_*.tfrecords``."""
    out: Path
    """Output root; gets ``train/``, ``validate/`` and ``test/`` in the BAIR folder layout."""
    validate_fraction: float = 0.02
    """Fraction of the training trajectories moved to ``validate/`` (chosen by a seeded permutation)."""
    seed: int = 0
    """Seed of the permutation that picks the validation trajectories."""
    seq_len: int = BAIR_SEQ_LEN
    """Steps read from each record (BAIR records have 30)."""
    progress: bool = True
    """Show a tqdm progress bar on stderr."""


@dataclass
class ConvertSummary:
    """What a conversion did, per output split."""

    written: dict[str, int]
    """Sequences written in this run."""
    skipped: dict[str, int]
    """Complete sequences already present (from an earlier, interrupted run) and left alone."""


def _find_sources(root: Path) -> dict[str, list[Path]]:
    sources: dict[str, list[Path]] = {}
    for split in ("train", "test"):
        folder = root / split
        if folder.is_dir():
            files = sorted(folder.glob("*.tfrecords"), key=lambda p: natural_key(p.name))
            if not files:
                raise DataError(folder, "holds no *.tfrecords files")
            for file in files:
                if file.name.startswith("."):  # its stem names the output folder: none, or a hidden one
                    raise DataError(file, "a TFRecord file needs a name before .tfrecords (it names the "
                                          "output trajectory folder); rename it")
            sources[split] = files
    if not sources:
        raise DataError(root, "no train/ or test/ folder with *.tfrecords files (expected softmotion30_44k/)")
    return sources


def _is_complete(seq_dir: Path, seq_len: int) -> bool:
    names = [f"{t}.png" for t in range(seq_len)] + [ACTIONS_FILE, POSITIONS_FILE]
    return seq_dir.is_dir() and all((seq_dir / n).is_file() for n in names)


def _manifest(cfg: ConvertConfig, counts: dict[str, int]) -> dict:
    return {"validate_fraction": cfg.validate_fraction, "seed": cfg.seed, "seq_len": cfg.seq_len, "sources": counts}


def _check_manifest(cfg: ConvertConfig, counts: dict[str, int]) -> None:
    """Refuse to resume into ``out`` converted with other settings (it would mix train and validate)."""
    manifest = _manifest(cfg, counts)
    check_resume(cfg.out, _command(cfg), {"writer": "convert", **manifest})  # not another writer's folder
    path = cfg.out / MANIFEST
    if path.exists():
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(path, f"unreadable conversion manifest ({exc})") from exc
        if previous != manifest:
            raise DataError(path, "output was converted with other settings or source files; use a fresh --out")
        return
    mark_incomplete(cfg.out, _command(cfg), {"writer": "convert", **manifest})  # before the manifest: no moment
    atomic_write_json(path, manifest)                                         # looks like a finished dataset


def convert(cfg: ConvertConfig) -> ConvertSummary:
    """Convert BAIR TFRecords to ``<out>/<split>/<file stem>/<record index>/``; resumable and atomic per sequence.

    The validation trajectories are the first ``round(validate_fraction * n_train)`` of a permutation of
    all training records drawn from ``numpy.random.default_rng(seed)``, so the split depends only on the
    seed, the fraction and the set of source files. Complete sequences already in ``out`` are skipped.
    """
    if not 0.0 <= cfg.validate_fraction < 1.0:
        raise ValueError(f"validate_fraction must be in [0, 1), got {cfg.validate_fraction}")
    if not is_int(cfg.seq_len) or not 2 <= cfg.seq_len <= 10_000:
        raise ValueError(f"--seq-len must be an integer in 2..10000 (BAIR records hold 30 steps), got {cfg.seq_len!r}")
    cfg = replace(cfg, tfrecords=Path(cfg.tfrecords), out=Path(cfg.out))
    out = cfg.out
    sources = _find_sources(cfg.tfrecords)
    offsets = {path: scan_tfrecord(path) for files in sources.values() for path in files}
    counts = {f"{split}/{p.name}": len(offsets[p]) for split, files in sources.items() for p in files}
    _check_manifest(cfg, counts)
    mark_incomplete(out, _command(cfg), {"writer": "convert", **_manifest(cfg, counts)})  # resuming: incomplete
    # until this run ends too
    remove_partial_writes(out)

    train_keys = [(p, i) for p in sources.get("train", []) for i in range(len(offsets[p]))]
    n_val = round(cfg.validate_fraction * len(train_keys))
    if cfg.validate_fraction > 0 and len(train_keys) >= 2:
        n_val = min(max(n_val, 1), len(train_keys) - 1)
    perm = np.random.default_rng(cfg.seed).permutation(len(train_keys))
    validate = {train_keys[k] for k in perm[:n_val]}

    written = {"train": 0, "validate": 0, "test": 0}
    skipped = dict(written)
    total = sum(len(o) for o in offsets.values())
    with tqdm(total=total, unit="seq", desc="convert", disable=not cfg.progress, file=sys.stderr) as bar:
        for src_split, files in sources.items():
            for path in files:
                with open(path, "rb") as f:
                    for index, offset in enumerate(offsets[path]):
                        split = "validate" if (path, index) in validate else src_split
                        dest = out / split / path.name[: -len(".tfrecords")] / str(index)
                        if _is_complete(dest, cfg.seq_len):
                            skipped[split] += 1
                        else:
                            seq = parse_bair_record(read_record(f, path, offset, index), path, index, cfg.seq_len)
                            write_sequence(dest, *seq, overwrite=True)
                            written[split] += 1
                        bar.update(1)
    mark_complete(out)
    return ConvertSummary(written, skipped)


def _command(cfg: ConvertConfig) -> str:
    """The command line that resumes this conversion."""
    return (f"bair-world data convert --tfrecords {cfg.tfrecords} --out {cfg.out} --validate-fraction "
            f"{cfg.validate_fraction} --seed {cfg.seed} --seq-len {cfg.seq_len}")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``bair-world data convert``."""
    d = ConvertConfig(Path("."), Path("."))
    parser.add_argument("--tfrecords", type=Path, required=True, metavar="DIR",
                        help="softmotion30_44k folder with train/ and test/ *.tfrecords")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output root for the folder layout")
    parser.add_argument("--validate-fraction", type=float, default=d.validate_fraction, metavar="F",
                        help=f"fraction of train trajectories moved to validate/ (default {d.validate_fraction})")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"seed of the validation pick (default {d.seed})")
    parser.add_argument("--seq-len", type=int, default=d.seq_len, help=f"steps per record (default {d.seq_len})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run the conversion; prints a per-split summary, or the error naming the bad file (exit 2)."""
    cfg = ConvertConfig(args.tfrecords, args.out, args.validate_fraction, args.seed, args.seq_len, not args.no_progress)
    summary = convert(cfg)  # a write cut short (full disk, ulimit -f) installs nothing half-written
    for split in ("train", "validate", "test"):
        print(f"{split:>8}: {summary.written[split]} written, {summary.skipped[split]} already complete")
    print(f"wrote {cfg.out}")
    return 0


__all__ = ["ConvertConfig", "ConvertSummary", "convert", "parse_bair_record", "read_bair_tfrecord", "scan_tfrecord"]
