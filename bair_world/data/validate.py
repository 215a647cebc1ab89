"""``bair-world data check DIR``: validate every sequence of a BAIR-format dataset and summarise it.

Every file of every sequence is checked (a bad frame does not hide a bad CSV next to it), and every
problem is collected rather than stopping at the first, so one run lists all that needs fixing.
A packed dataset (`bair_world.data.packed`) is checked too: its manifest, arrays and every value.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bair_world.data.bair_folder import (
    ACTIONS_FILE, N_LABELS, POSITIONS_FILE, SPLITS, list_sequences, partial_writes, read_frame, read_labels,
    read_table, remove_partial_writes,
)
from bair_world.data.batch import ACTION_DIM, POSITION_DIM
from bair_world.data.completion import incomplete_problem
from bair_world.data.errors import DataError
from bair_world.data.flow import read_stored_flow
from bair_world.data.packed import PackedSplit, _manifest, is_packed, unpack_labels
from bair_world.data.poses import read_poses
from bair_world.data.synthetic import LOCK
from bair_world.io import freed_line, is_stale, size_of
from bair_world.pidlock import LockBusy, PidLock, stale_lock_files


@dataclass
class CheckReport:
    """What ``check_dataset`` found."""

    root: Path
    """The dataset root that was checked."""
    counts: dict[str, int] = field(default_factory=dict)
    """Sequence folders found per split (good and bad)."""
    bad_sequences: dict[str, int] = field(default_factory=dict)
    """Sequences with at least one problem, per split."""
    lengths: dict[int, int] = field(default_factory=dict)
    """Sequence length (CSV rows) -> number of sequences with that length."""
    action_min: np.ndarray | None = None
    """(4,) column minima of all actions in good sequences; None if there were none."""
    action_max: np.ndarray | None = None
    """(4,) column maxima of all actions."""
    position_min: np.ndarray | None = None
    """(3,) column minima of all end-effector positions."""
    position_max: np.ndarray | None = None
    """(3,) column maxima of all end-effector positions."""
    errors: list[DataError] = field(default_factory=list)
    """Every problem found, each naming its file."""

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.errors

    def _update(self, actions: np.ndarray, positions: np.ndarray) -> None:
        lo_a, hi_a, lo_p, hi_p = actions.min(0), actions.max(0), positions.min(0), positions.max(0)
        if self.action_min is None:
            self.action_min, self.action_max, self.position_min, self.position_max = lo_a, hi_a, lo_p, hi_p
            return
        self.action_min = np.minimum(self.action_min, lo_a)
        self.action_max = np.maximum(self.action_max, hi_a)
        self.position_min = np.minimum(self.position_min, lo_p)
        self.position_max = np.maximum(self.position_max, hi_p)

    def format(self) -> str:
        """Human-readable summary: counts per split, lengths, column ranges, then every bad file."""
        lines = [f"dataset {self.root}", f"{'split':<10}{'sequences':>10}{'bad':>8}"]
        for split, n in self.counts.items():
            lines.append(f"{split:<10}{n:>10}{self.bad_sequences.get(split, 0):>8}")
        if self.lengths:
            lines.append("lengths: " + ", ".join(f"{t} steps x {n}" for t, n in sorted(self.lengths.items())))
        if self.action_min is not None:
            lines.append(f"{'column':<14}{'min':>12}{'max':>12}")
            for name, lo, hi in (("action", self.action_min, self.action_max),
                                 ("position", self.position_min, self.position_max)):
                for c in range(len(lo)):
                    lines.append(f"{f'{name}[{c}]':<14}{lo[c]:>12.5f}{hi[c]:>12.5f}")
        if self.errors:
            lines.append(f"{len(self.errors)} problem(s):")
            lines.extend(f"  {err}" for err in self.errors)
        else:
            lines.append("all sequences are valid")
        return "\n".join(lines)


def check_sequence(seq_dir: Path, seq_len: int | None = None) -> tuple[tuple[np.ndarray, np.ndarray] | None, list[DataError]]:
    """Check every file of one sequence.

    Args:
        seq_dir: the sequence folder.
        seq_len: required length; ``None`` uses the CSV row count and rejects frames past it.

    Returns:
        ``((actions, positions) or None if anything is wrong, [every problem found])``.
    """
    errors: list[DataError] = []
    tables = []
    for name, n_cols in ((ACTIONS_FILE, ACTION_DIM), (POSITIONS_FILE, POSITION_DIM)):
        try:
            tables.append(read_table(seq_dir / name, n_cols))
        except DataError as exc:
            errors.append(exc)
            tables.append(None)
    actions, positions = tables
    rows = [len(t) for t in tables if t is not None]
    if len(rows) == 2 and rows[0] != rows[1]:
        errors.append(DataError(seq_dir / POSITIONS_FILE, f"has {rows[1]} rows but {ACTIONS_FILE} has {rows[0]}"))
    if seq_len is not None:
        for name, table in zip((ACTIONS_FILE, POSITIONS_FILE), tables):
            if table is not None and len(table) < seq_len:
                errors.append(DataError(seq_dir / name, f"has {len(table)} rows, expected at least {seq_len}"))
        length = seq_len
    else:  # without CSV rows, check the frames that are there
        length = max(rows) if rows else len(list(seq_dir.glob("*.png")))
    for t in range(length):
        try:
            read_frame(seq_dir / f"{t}.png")
        except DataError as exc:
            errors.append(exc)
    if seq_len is None and (seq_dir / f"{length}.png").exists():
        errors.append(DataError(seq_dir / f"{length}.png", f"frame past the {length} rows of the CSV files"))
    for read_optional in (read_labels, read_stored_flow, read_poses):  # labels/flow/poses.npz: checked when present
        try:
            read_optional(seq_dir, length)
        except DataError as exc:
            errors.append(exc)
    if errors:
        return None, errors
    return (actions[:length], positions[:length]), errors


def _max_label(stored: np.ndarray) -> int:
    """The largest label value in 2-bit packed labels (`bair_world.data.packed.pack_labels`)."""
    return max((int(unpack_labels(stored[i:i + 64]).max()) for i in range(0, len(stored), 64)), default=0)


def _check_packed_split(root: Path, split: str, seq_len: int | None, report: CheckReport) -> None:
    """Check one split of a packed dataset (files, shapes, every value) into ``report``."""
    try:
        data = PackedSplit(root, split)
    except DataError as exc:
        report.errors.append(exc)
        return
    n, length = len(data), data.length
    report.counts[split] = n
    bad = np.zeros(n, bool)
    if seq_len is not None and length < seq_len:
        report.errors.append(DataError(root / split / "actions.npy", f"sequences have {length} steps, expected {seq_len}"))
        bad[:] = True
    for kind, array in (("actions", data.actions), ("positions", data.positions)):
        finite = np.isfinite(array).all(axis=(1, 2))  # (N,)
        if not finite.all():
            report.errors.append(DataError(root / split / f"{kind}.npy", f"sequences {np.flatnonzero(~finite)[:5].tolist()}"
                                                                         " hold NaN or inf"))
        bad |= ~finite
    if data.labels is not None and n and int(_max_label(data.labels)) >= N_LABELS:
        report.errors.append(DataError(root / split / "labels.npy", f"label values outside 0..{N_LABELS - 1}"))
    report.bad_sequences[split] = int(bad.sum())
    report.lengths[length] = report.lengths.get(length, 0) + n
    if (~bad).any():
        report._update(data.actions[~bad].reshape(-1, ACTION_DIM), data.positions[~bad].reshape(-1, POSITION_DIM))


def check_dataset(root: str | Path, splits: list[str] | None = None, seq_len: int | None = None,
                  progress: bool = False) -> CheckReport:
    """Validate every sequence of every split present under ``root`` (or of ``splits``)."""
    root = Path(root)
    report = CheckReport(root)
    if not root.is_dir():
        report.errors.append(DataError(root, "dataset folder does not exist"))
        return report
    incomplete = incomplete_problem(root)
    if incomplete is not None:  # its writer is not done: the sequences are not worth checking yet
        report.errors.append(incomplete)
        return report
    if is_packed(root):
        try:
            manifest_splits = list(_manifest(root)["splits"])  # checked: names, entries, bounds
        except DataError as exc:
            report.errors.append(exc)
            return report
        for split in splits if splits is not None else manifest_splits:
            _check_packed_split(root, split, seq_len, report)
        return report
    wanted = splits if splits is not None else [s for s in SPLITS if (root / s).is_dir()]
    if not wanted:
        report.errors.append(DataError(root, f"no split folder ({', '.join(SPLITS)}) found"))
        return report
    listings: dict[str, list[Path]] = {}
    for split in wanted:
        try:
            listings[split] = list_sequences(root, split)
        except DataError as exc:
            report.errors.append(exc)
            report.counts[split] = 0
    total = sum(len(v) for v in listings.values())
    with tqdm(total=total, unit="seq", desc="check", disable=not progress, file=sys.stderr) as bar:
        for split, sequences in listings.items():
            report.counts[split] = len(sequences)
            report.bad_sequences[split] = 0
            for seq_dir in sequences:
                arrays, errors = check_sequence(seq_dir, seq_len)
                if errors:
                    report.errors.extend(errors)
                    report.bad_sequences[split] += 1
                else:
                    report.lengths[len(arrays[0])] = report.lengths.get(len(arrays[0]), 0) + 1
                    report._update(*arrays)
                bar.update(1)
    return report


def clean_dataset(root: str | Path) -> str | None:
    """Remove what killed writers left in and beside ``root``: sequence staging folders
    (``.<seq>.partial-*``), temporaries and pack staging folders of dead pids (``.<name>.tmp-<pid>...``)
    and unheld lock files. Nothing is touched while a live ``data synth`` holds the folder's lock.

    Returns:
        One line saying what was freed, or None when nothing was left behind.
    """
    root = Path(root)
    if not root.is_dir():
        return None
    had_lock = (root / LOCK).exists()
    try:
        with PidLock(root / LOCK):  # a live writer's staging folders are not garbage
            partial = partial_writes(root)
            nbytes = size_of(partial)
            remove_partial_writes(root)
            stale = [p for p in sorted(root.parent.glob(f".{root.name}.tmp-*")) + sorted(root.glob(".*.tmp-*"))
                     if is_stale(p)]
            nbytes += size_of(stale)
            for path in stale:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() and not path.is_symlink() else path.unlink()
            removed = partial + stale + [p for p in stale_lock_files(root) if p.name != LOCK]
    except (LockBusy, OSError):
        return None
    if had_lock:
        removed.append(root / LOCK)
    if not removed:
        return None
    return freed_line("staging folders, temporaries and locks of dead processes", removed, nbytes)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``bair-world data check``."""
    parser.add_argument("root", type=Path, metavar="DIR", help="dataset root holding train/, validate/, test/")
    parser.add_argument("--split", action="append", choices=SPLITS, help="check only this split (repeatable)")
    parser.add_argument("--seq-len", type=int, default=None,
                        help="required sequence length (default: each sequence's CSV row count)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Print the report; exit 1 when any file is bad, 2 (one line on stderr) when the folder is
    missing or its writer was interrupted."""
    for problem in (None if args.root.is_dir() else DataError(args.root, "dataset folder does not exist"),
                    incomplete_problem(args.root)):
        if problem is not None:
            raise problem
    freed = clean_dataset(args.root)
    if freed:
        print(freed, file=sys.stderr)
    report = check_dataset(args.root, args.split, args.seq_len, progress=not args.no_progress)
    print(report.format())
    return 0 if report.ok else 1
