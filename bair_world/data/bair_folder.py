"""The processed BAIR folder layout: read, write and list sequences, and a torch Dataset over them.

Layout (the seed's): ``<root>/<split>/<trajectory folder>/<sequence>/`` holding ``0.png .. {T-1}.png``
(64x64 RGB), ``actions.csv`` (T x 4) and ``endeffector_positions.csv`` (T x 3), comma-separated,
no header. A sequence from the built-in pushing world may also hold ``labels.npz`` (key ``labels``,
uint8 (T, 64, 64): 0 static scene, 1 arm/gripper, 2 objects), read by :func:`read_labels`, and
``flow.npz``, its true per-pixel flow (`bair_world.data.flow`: `read_flow`); the layout is valid
without them. Every problem raises :class:`~bair_world.data.errors.DataError` naming the exact file.
"""

from __future__ import annotations

import errno
import io
import os
import re
import shutil
import uuid
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from bair_world.data.batch import ACTION_DIM, IMAGE_SIZE, POSITION_DIM, frames_to_float, stored_frames
from bair_world.data.completion import require_complete
from bair_world.data.errors import DataError
from bair_world.data.files import npz_bytes, read_npz, require_regular_file
from bair_world.data.flow import FLOW_FILE, dequantise_flow, missing_targets, quantise_flow, read_stored_flow
from bair_world.data.poses import POSES_FILE, check_poses
from bair_world.io import install_directory, is_stale, temp_sibling, write_verified

ACTIONS_FILE = "actions.csv"
POSITIONS_FILE = "endeffector_positions.csv"
LABELS_FILE = "labels.npz"
N_LABELS = 3  # 0 static scene, 1 arm/gripper, 2 objects
SPLITS = ("train", "validate", "test")
BAIR_SEQ_LEN = 30
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_HEADER_BYTES = 33  # signature (8), then the IHDR chunk: length (4), "IHDR", width, height (4 each), 5 more, CRC
MAX_FRAME_BYTES = 1 << 20  # a 64x64 RGB PNG is ~10 KB (12.3 KB stored uncompressed); 1 MiB leaves room for metadata
_PARTIAL_MARK = ".partial-"  # older versions' sequence staging folders (``.<seq>.partial-*``, no pid)
MAX_CSV_BYTES = 1 << 20  # 30 rows of 4 numbers are ~3 KB; 1 MiB leaves room for 10,000-step sequences
#: a CSV field: a decimal number as numpy/BAIR write it (``float()`` would also take "1_0" as 10.0);
#: nan/inf pass here and are refused below with their own message
_CSV_NUMBER = re.compile(r"\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf(?:inity)?)\s*", re.IGNORECASE | re.ASCII)
MAX_LABELS_BYTES = 64 << 20  # decompressed labels.npz: 4,096 B a step, so ~16,000 steps


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers numerically: ``traj_2`` < ``traj_10``, ``2`` < ``10``."""
    return tuple((0, int(tok), "") if tok.isdigit() else (1, 0, tok) for tok in re.split(r"(\d+)", name))


def read_table(path: Path, n_cols: int) -> np.ndarray:
    """Parse a header-less comma-separated float table with exactly ``n_cols`` columns -> float32 (rows, n_cols)."""
    require_regular_file(path, "CSV file")
    if path.stat().st_size > MAX_CSV_BYTES:
        raise DataError(path, f"CSV file of {path.stat().st_size:,} bytes; a sequence's tables are far smaller "
                              f"(at most {MAX_CSV_BYTES:,})")
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"unreadable CSV ({exc})") from exc
    lines = text.splitlines()
    while lines and not lines[-1].strip():  # tolerate trailing blank lines only
        lines.pop()
    if not lines:
        raise DataError(path, "CSV is empty")
    values = np.empty((len(lines), n_cols), dtype=np.float64)
    for r, line in enumerate(lines):
        fields = line.split(",")
        if len(fields) != n_cols:
            raise DataError(path, f"row {r + 1} has {len(fields)} columns, expected {n_cols}")
        for c, field in enumerate(fields):
            if not _CSV_NUMBER.fullmatch(field):
                raise DataError(path, f"row {r + 1}, column {c + 1}: {field.strip()[:40]!r} is not a number")
            values[r, c] = float(field)
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        r, c = bad[0]
        raise DataError(path, f"row {r + 1}, column {c + 1} is {values[r, c]} ({len(bad)} non-finite values)")
    return values.astype(np.float32)


def png_size(header: bytes, path: Path) -> tuple[int, int]:
    """(width, height) declared by a PNG's IHDR chunk, from the file's first `PNG_HEADER_BYTES` bytes.

    Raises:
        DataError: naming ``path``: not a PNG by its signature, shorter than its header, or an IHDR
            chunk that is missing or declares no pixels.
    """
    if not header.startswith(_PNG_SIGNATURE) and not _PNG_SIGNATURE.startswith(header):
        raise DataError(path, "not a PNG file (bad signature)")
    if len(header) < PNG_HEADER_BYTES:
        raise DataError(path, f"truncated PNG: {len(header)} bytes, shorter than its {PNG_HEADER_BYTES}-byte header")
    length, kind = int.from_bytes(header[8:12], "big"), header[12:16]
    if kind != b"IHDR" or length != 13:
        raise DataError(path, "corrupt PNG: no IHDR header chunk after the signature")
    width, height = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
    if width == 0 or height == 0:
        raise DataError(path, f"corrupt PNG: header declares a {width}x{height} image")
    return width, height


def read_frame(path: Path) -> np.ndarray:
    """Read one 64x64 8-bit RGB PNG -> uint8 (64, 64, 3) RGB.

    The header is checked before anything is decoded: a file that is not a PNG by its signature, or
    whose IHDR declares another size than 64x64 (an image bomb: 1 MB declaring 20000x20000 decodes to
    1.2 GB), is refused having read its first 33 bytes; so is a file larger than `MAX_FRAME_BYTES`.
    """
    require_regular_file(path, "frame")
    try:
        with open(path, "rb") as f:
            header = f.read(PNG_HEADER_BYTES)
            width, height = png_size(header, path)
            if (width, height) != (IMAGE_SIZE, IMAGE_SIZE):
                raise DataError(path, f"image is {width}x{height}, expected {IMAGE_SIZE}x{IMAGE_SIZE}")
            rest = f.read(MAX_FRAME_BYTES + 1 - len(header))
    except FileNotFoundError:
        raise DataError(path, "missing frame") from None
    except OSError as exc:
        raise DataError(path, f"unreadable frame ({exc.strerror or exc})") from None
    if len(header) + len(rest) > MAX_FRAME_BYTES:
        raise DataError(path, f"frame file larger than {MAX_FRAME_BYTES:,} bytes; a {IMAGE_SIZE}x{IMAGE_SIZE} PNG "
                              f"takes about 10,000")
    try:
        img = cv2.imdecode(np.frombuffer(header + rest, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        img = None
    if img is None:
        raise DataError(path, "unreadable or corrupt PNG")
    if img.dtype != np.uint8:
        raise DataError(path, f"PNG has {img.dtype} pixels, expected 8-bit")
    channels = 1 if img.ndim == 2 else img.shape[2]
    if channels != 3:
        raise DataError(path, f"PNG has {channels} channel(s), expected 3 (RGB)")
    if img.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):  # the header said so; a decoder disagreeing is a corrupt file
        raise DataError(path, f"image is {img.shape[1]}x{img.shape[0]}, expected {IMAGE_SIZE}x{IMAGE_SIZE}")
    return img[:, :, ::-1]  # OpenCV decodes BGR; BAIR frames are RGB


def read_sequence(seq_dir: str | Path, seq_len: int | None = BAIR_SEQ_LEN) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read one sequence folder.

    Args:
        seq_dir: folder holding ``0.png ..``, ``actions.csv`` and ``endeffector_positions.csv``.
        seq_len: number of leading steps to read; the CSVs must have at least this many rows.
            ``None`` reads the full length given by the CSVs and also rejects a frame past the end.

    Returns:
        ``(frames uint8 (T, 64, 64, 3) RGB, actions float32 (T, 4), positions float32 (T, 3))``.

    Raises:
        DataError: naming the offending file (missing/corrupt/mis-sized frame, bad CSV shape or values).
    """
    seq_dir = Path(seq_dir)
    if not seq_dir.is_dir():
        raise DataError(seq_dir, "sequence folder does not exist")
    if seq_len is not None and seq_len < 1:
        raise ValueError(f"seq_len must be >= 1 or None, got {seq_len}")
    actions = read_table(seq_dir / ACTIONS_FILE, ACTION_DIM)
    positions = read_table(seq_dir / POSITIONS_FILE, POSITION_DIM)
    if len(positions) != len(actions):
        raise DataError(seq_dir / POSITIONS_FILE, f"has {len(positions)} rows but {ACTIONS_FILE} has {len(actions)}")
    length = len(actions) if seq_len is None else seq_len
    if len(actions) < length:
        raise DataError(seq_dir / ACTIONS_FILE, f"has {len(actions)} rows, expected at least {length}")
    frames = np.empty((length, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    for t in range(length):
        frames[t] = read_frame(seq_dir / f"{t}.png")
    if seq_len is None and (seq_dir / f"{length}.png").exists():
        raise DataError(seq_dir / f"{length}.png", f"frame past the {length} rows of the CSV files")
    return frames, actions[:length], positions[:length]


def _check_arrays(frames: np.ndarray, actions: np.ndarray, positions: np.ndarray, where: Path) -> None:
    t = frames.shape[0] if frames.ndim == 4 else -1
    if frames.dtype != np.uint8 or frames.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3) or t < 1:
        raise ValueError(f"{where}: frames must be uint8 (T, 64, 64, 3), got {frames.dtype} {frames.shape}")
    if actions.shape != (t, ACTION_DIM):
        raise ValueError(f"{where}: actions must be ({t}, {ACTION_DIM}), got {actions.shape}")
    if positions.shape != (t, POSITION_DIM):
        raise ValueError(f"{where}: positions must be ({t}, {POSITION_DIM}), got {positions.shape}")
    if not (np.isfinite(actions).all() and np.isfinite(positions).all()):
        raise ValueError(f"{where}: actions/positions contain NaN or inf")


def write_sequence(
    seq_dir: str | Path,
    frames: np.ndarray,
    actions: np.ndarray,
    positions: np.ndarray,
    overwrite: bool = False,
    labels: np.ndarray | None = None,
    flow: np.ndarray | None = None,
    poses: np.ndarray | None = None,
) -> Path:
    """Write one sequence atomically: into a hidden temporary sibling, then rename it into place.

    Args:
        seq_dir: destination sequence folder (parents are created).
        frames: uint8 (T, 64, 64, 3) RGB.
        actions: (T, 4), written as float32 values with ``%.18e`` like the real files.
        positions: (T, 3), likewise.
        overwrite: replace an existing ``seq_dir``; otherwise an existing folder is an error.
        labels: optional uint8 (T, 64, 64) region labels, written as ``labels.npz``.
        flow: optional true flow in pixels, float (T, 64, 64, 2) as `bair_world.sim.rollout` gives it,
            written as ``flow.npz`` (int8 in 1/8 pixel, (T, 2, 64, 64): `bair_world.data.flow`).
        poses: optional float32 (T, 9, 3) object poses by palette colour, as ``poses.npz`` (`bair_world.data.poses`).

    Returns:
        ``seq_dir`` as a Path.
    """
    seq_dir = Path(seq_dir)
    frames, actions, positions = np.asarray(frames), np.asarray(actions), np.asarray(positions)
    _check_arrays(frames, actions, positions, seq_dir)
    stored_flow = None if flow is None else _quantised(flow, len(frames), seq_dir)
    poses = None if poses is None else _checked_poses(np.asarray(poses), len(frames), seq_dir)
    if seq_dir.exists() and not overwrite:
        raise FileExistsError(f"{seq_dir}: sequence folder already exists (pass overwrite=True to replace it)")
    seq_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(seq_dir)
    tmp.mkdir()
    name = ""
    try:
        # every file is encoded in memory, written and read back (the folder is renamed in whole):
        # cv2.imwrite reports success even when its flush fails (a full disk, ``ulimit -f``)
        for t, frame in enumerate(frames):
            name = f"{t}.png"
            ok, png = cv2.imencode(".png", np.ascontiguousarray(frame[:, :, ::-1]))  # RGB -> BGR
            if not ok:
                raise OSError(errno.EIO, "OpenCV could not encode the frame", str(seq_dir / f"{t}.png"))
            write_verified(tmp / f"{t}.png", png.tobytes())
        name = ACTIONS_FILE
        write_verified(tmp / ACTIONS_FILE, _csv_bytes(actions))
        name = POSITIONS_FILE
        write_verified(tmp / POSITIONS_FILE, _csv_bytes(positions))
        if labels is not None:
            name = LABELS_FILE
            _check_labels(np.asarray(labels), len(frames), seq_dir / LABELS_FILE)
            write_verified(tmp / LABELS_FILE, npz_bytes("labels", np.asarray(labels, np.uint8)))
        if stored_flow is not None:
            name = FLOW_FILE
            write_verified(tmp / FLOW_FILE, npz_bytes("flow", stored_flow))
        if poses is not None:
            name = POSES_FILE
            write_verified(tmp / name, npz_bytes("poses", poses[:len(frames)]))
        # overwrite: exchanged atomically, or the old folder moved aside first (a directory cannot be
        # replaced in one rename)
        install_directory(tmp, seq_dir, backup=seq_dir.parent / f".{seq_dir.name}.old-{uuid.uuid4().hex[:8]}",
                          sync=False)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and name and e.errno is not None:  # name the file, not its staging copy
            raise OSError(e.errno, e.strerror or str(e), str(seq_dir / name)) from e
        raise
    return seq_dir


def _checked_poses(poses: np.ndarray, length: int, seq_dir: Path) -> np.ndarray:
    """``poses`` if they are float32 (T >= length, 9, 3) (`bair_world.data.poses.check_poses`), else DataError."""
    check_poses(poses, length, seq_dir / POSES_FILE)
    return poses


def _csv_bytes(values: np.ndarray) -> bytes:
    """A (T, k) table as the real files write it: float32 values with ``%.18e``, comma-separated."""
    buffer = io.BytesIO()
    np.savetxt(buffer, np.asarray(values).astype(np.float32), fmt="%.18e", delimiter=",")
    return buffer.getvalue()


def _quantised(flow: np.ndarray, length: int, where: Path) -> np.ndarray:
    """The stored form of ``flow`` (float (T, 64, 64, 2) -> int8 (T, 2, 64, 64)); ValueError naming ``where``."""
    try:
        stored = quantise_flow(flow)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if stored.ndim != 4 or len(stored) != length:
        raise ValueError(f"{where}: flow must have the frames' {length} steps, got shape {np.shape(flow)}")
    return stored


def _check_labels(labels: np.ndarray, length: int, path: Path) -> None:
    if labels.dtype != np.uint8 or labels.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or labels.ndim != 3:
        raise DataError(path, f"labels must be uint8 (T, {IMAGE_SIZE}, {IMAGE_SIZE}), got {labels.dtype} {labels.shape}")
    if len(labels) < length:
        raise DataError(path, f"has {len(labels)} label maps, expected at least {length}")
    if labels.size and labels.max() >= N_LABELS:
        raise DataError(path, f"label value {int(labels.max())} outside 0..{N_LABELS - 1}")


def read_labels(seq_dir: str | Path, seq_len: int | None = None) -> np.ndarray | None:
    """The sequence's region labels, uint8 (T, 64, 64) (the first ``seq_len``), or None without ``labels.npz``.

    Raises:
        DataError: the file is unreadable, has the wrong shape/dtype, too few maps or a value past 2.
    """
    path = Path(seq_dir) / LABELS_FILE
    if not os.path.lexists(path):
        return None
    labels = read_npz(path, "labels", "labels file", MAX_LABELS_BYTES, BAIR_SEQ_LEN * IMAGE_SIZE * IMAGE_SIZE)
    _check_labels(labels, seq_len or len(labels), path)
    return labels if seq_len is None else labels[:seq_len]


def partial_writes(root: str | Path) -> list[Path]:
    """The staging folders interrupted :func:`write_sequence` calls left under ``root``: those of dead
    pids (``.<seq>.tmp-<pid>-*``) and older versions' ``.<seq>.partial-*``."""
    root = Path(root)
    # split and trajectory folders that are symbolic links are not descended into: nothing in a
    # link's target is ever deleted
    trajs = [traj for split in _real_dirs(root) for traj in _real_dirs(split)]
    ours = [p for traj in trajs for p in traj.glob(".*.tmp-*") if p.is_dir() and not p.is_symlink() and is_stale(p)]
    old = [p for traj in trajs for p in traj.glob(f".*{_PARTIAL_MARK}*") if p.is_dir() and not p.is_symlink()]
    return sorted(ours + old)


def _real_dirs(folder: Path) -> list[Path]:
    """The folders in ``folder`` that are not hidden and not symbolic links."""
    try:
        return [p for p in folder.iterdir() if not p.name.startswith(".") and p.is_dir() and not p.is_symlink()]
    except OSError:
        return []


def remove_partial_writes(root: str | Path) -> int:
    """Delete the `partial_writes` under ``root``; returns the count."""
    removed = partial_writes(root)
    for tmp in removed:
        shutil.rmtree(tmp, ignore_errors=True)
    return len(removed)


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: natural_key(p.name))


def list_sequences(root: str | Path, split: str) -> list[Path]:
    """All sequence folders ``<root>/<split>/<trajectory>/<sequence>/``, naturally sorted (deterministic).

    Hidden folders (temporary writes) are ignored. Raises DataError for a dataset whose writer was
    interrupted (`bair_world.data.completion`), a missing or empty split, or a trajectory folder
    holding files directly (a sequence one level too high).
    """
    if not Path(root).is_dir():
        raise DataError(root, "dataset folder does not exist")
    require_complete(root)
    if not isinstance(split, str) or split in ("", ".", "..") or Path(split).name != split:
        raise DataError(root, f"split name {str(split)[:80]!r} must be a folder name inside the dataset root")
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise DataError(split_dir, f"split folder {split!r} does not exist")
    sequences: list[Path] = []
    for traj in _visible_dirs(split_dir):
        seqs = _visible_dirs(traj)
        if not seqs and (traj / ACTIONS_FILE).exists():
            raise DataError(traj, f"holds a sequence directly; expected {split}/<trajectory>/<sequence>/")
        sequences.extend(seqs)
    if not sequences:
        raise DataError(split_dir, f"split {split!r} holds no sequences (expected {split}/<trajectory>/<sequence>/)")
    return sequences


class BairFolderDataset(Dataset):
    """BAIR sequences in the folder layout; item ``i`` is sequence ``i`` of :func:`list_sequences`.

    Items are ``{"frames": float32 (T, 3, 64, 64) in [0, 1], "actions": (T, 4), "positions": (T, 3)}``,
    ready for :func:`bair_world.data.batch.collate`. Random picking belongs in the sampler.

    Args:
        root: dataset root holding ``train/``, ``validate/``, ``test/``.
        split: which split folder to read.
        seq_len: leading steps per item (``< 30`` takes the first ``seq_len`` steps of each sequence).
        cache: keep decoded uint8 sequences in memory after the first read (per worker process;
            ~370 KB per 30-step sequence, ~740 KB with targets, so only for small datasets).
        targets: items also hold ``"labels"`` (uint8 (T, 64, 64)) and ``"flow"`` (float32 (T, 2, 64, 64),
            pixels: `bair_world.data.flow`); every sequence must have ``labels.npz`` and ``flow.npz``
            (a DataError naming the missing file otherwise).
        stored: items keep the stored dtypes, channels first: frames uint8 (T, 3, 64, 64)
            (`batch.stored_frames`), flow int8 in 1/`FLOW_SCALE` pixel; training crops its window
            first and converts only the window, on the device (`batch.unit_frames`, `flow.flow_pixels`).
    """

    def __init__(self, root: str | Path, split: str, seq_len: int = BAIR_SEQ_LEN, cache: bool = False,
                 targets: bool = False, stored: bool = False):
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        self.root = Path(root)
        self.split = split
        self.seq_len = seq_len
        self.targets = targets
        self.stored = stored
        self.paths = list_sequences(self.root, split)
        if targets:  # refused at once when the first sequence has none (real BAIR data)
            for name in (LABELS_FILE, FLOW_FILE):
                if not os.path.lexists(self.paths[0] / name):
                    raise missing_targets(self.paths[0] / name)
        self._cache: dict[int, tuple[np.ndarray, ...]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.paths)

    def _read(self, index: int) -> tuple[np.ndarray, ...]:
        """(frames, actions, positions) of sequence ``index``, then (labels, stored int8 flow) with targets."""
        seq = self.paths[index]
        arrays = read_sequence(seq, self.seq_len)
        if not self.targets:
            return arrays
        labels, flow = read_labels(seq, self.seq_len), read_stored_flow(seq, self.seq_len)
        for value, name in ((labels, LABELS_FILE), (flow, FLOW_FILE)):
            if value is None:
                raise missing_targets(seq / name)
        return (*arrays, labels, flow)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} sequences in {self.root / self.split}")
        index %= len(self)
        arrays = None if self._cache is None else self._cache.get(index)
        if arrays is None:
            arrays = self._read(index)
            if self._cache is not None:
                self._cache[index] = arrays
        frames, actions, positions = arrays[:3]
        video = stored_frames(frames) if self.stored else frames_to_float(frames)  # (T, 64, 64, 3) -> (T, 3, 64, 64)
        item = {"frames": video, "actions": torch.from_numpy(actions.copy()),
                "positions": torch.from_numpy(positions.copy())}
        if self.targets:
            item["labels"] = torch.from_numpy(arrays[3].copy())
            flow = arrays[4]  # (T, 2, 64, 64) int8
            item["flow"] = torch.from_numpy(flow.copy() if self.stored else dequantise_flow(flow))
        return item

    def labels(self, index: int) -> np.ndarray | None:
        """Region labels uint8 (seq_len, 64, 64) of sequence ``index`` (see `read_labels`), or None."""
        return read_labels(self.paths[index], self.seq_len)

    def __repr__(self) -> str:
        return f"BairFolderDataset(root={str(self.root)!r}, split={self.split!r}, seq_len={self.seq_len}, n={len(self)})"
