"""BAIR-format data from the built-in pushing world: `write_dataset` (folders), `write_packed`, `data synth`.

The cached default dataset that training, evaluation and the envs read is `bair_world.data.default_data`.

Each sequence's seed is derived from (seed, split, index) alone, so the bytes on disk do not depend on
the number of worker processes or on the order in which sequences finish. A dataset's sequences are
driven by one data policy (`bair_world.sim.policy.POLICIES`: ``scripted``, the default, ``push``,
``random`` or ``mixed``), recorded in the manifest (``policy``) so the true world can be restarted
from any sequence (`bair_world.data.seeds.recorded_policy`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bair_world.data.bair_folder import (ACTIONS_FILE, LABELS_FILE, POSITIONS_FILE, SPLITS, natural_key,
                                         remove_partial_writes, write_sequence)
from bair_world.data.completion import check_resume, mark_complete, mark_incomplete
from bair_world.data.errors import DataError
from bair_world.data.flow import FLOW_FILE
from bair_world.data.poses import POSES_FILE
from bair_world.data.seeds import MANIFEST, recorded_seeds, sequence_seed  # noqa: F401 (re-exported)
from bair_world.io import atomic_write_json
from bair_world.pidlock import LockBusy, PidLock
from bair_world.sim import (DEFAULT_POLICY, GENERATOR_VERSION, POLICIES, MotionStats, SimConfig, check_policy,
                            motion_stats, rollout, sequence_motion)
from bair_world.sim.policy import MIXED_SHARES

DEFAULT_COUNTS = {"train": 8192, "validate": 128, "test": 256}
DEFAULT_SEED = 0
SEQUENCE_LENGTH = 30
PER_TRAJ_FOLDER = 256  # sequences per <trajectory folder>, like BAIR's traj_0_to_255
LOCK = ".synth.lock"  # one writer per --out
TARGETS = ["labels", "flow", "poses"]  # what every sequence holds beside frames and tables (manifest: "targets")
ACTION_COLUMNS = ["dx (m)", "dy (m)", "gripper closure 0..4", "height command 0 hold / 1 lower / 2 lift"]


def sequence_dir(root: Path, split: str, index: int) -> Path:
    """`<root>/<split>/traj_<a>_to_<b>/<index>` with 256 sequences per trajectory folder."""
    start = index - index % PER_TRAJ_FOLDER
    return root / split / f"traj_{start}_to_{start + PER_TRAJ_FOLDER - 1}" / str(index)


@dataclass
class SynthReport:
    """What `write_dataset` did.

    Attributes:
        root: the dataset folder.
        counts: sequences per split in the dataset.
        written: sequences generated in this call.
        skipped: complete sequences found on disk and kept (resume).
        seconds: wall time of the call.
        motion: motion statistics of the sequences generated in this call.
        removed: sequences past the counts (left by an earlier run with larger counts) deleted.
        kept: entries of the split folders this writer did not write (a user's folder or file, a
            sequence folder holding other files), left alone.
    """

    root: Path
    counts: dict[str, int]
    written: int
    skipped: int
    seconds: float
    motion: MotionStats = field(default_factory=lambda: motion_stats([]))
    removed: int = 0
    kept: list[Path] = field(default_factory=list)

    @property
    def frames_per_second(self) -> float:
        return self.written * SEQUENCE_LENGTH / max(self.seconds, 1e-9)

    def __str__(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        removed = f", {self.removed} past the counts removed" if self.removed else ""
        return (f"{self.root}: {counts} sequences ({self.written} written, {self.skipped} already complete{removed})\n"
                f"{self.written * SEQUENCE_LENGTH} frames in {self.seconds:.1f} s = {self.frames_per_second:.0f} frames/s\n"
                f"motion: {self.motion}" + (f"\n{self.kept_line()}" if self.kept else ""))

    def kept_line(self) -> str:
        """One line naming (the first few of) the `kept` entries."""
        n = len(self.kept)
        shown = ", ".join(str(p) for p in self.kept[:3]) + (f" and {n - 3} more" if n > 3 else "")
        return f"left alone, not written by data synth: {n} entr{'y' if n == 1 else 'ies'} ({shown})"


def _arrays(task: tuple[str, str, int, int, int, str]):
    """Worker: (split, index, frames, actions, positions, labels, flow, poses, motion) of one sequence, in memory."""
    _, split, index, seed, length, policy = task
    r = rollout(sequence_seed(seed, split, index), length, SimConfig(), labels=True, flow=True, policy=policy,
                poses=True)
    return (split, index, r.frames, r.actions, r.positions, r.labels, r.flow, r.poses,
            sequence_motion(r.frames, r.object_pixels))


def _in_pool(fn, tasks: list, workers: int | None, progress: bool, desc: str):
    """Yield ``fn(task)`` for every task, in completion order, from ``workers`` processes (1: here)."""
    workers = max(1, min(workers or os.cpu_count() or 1, max(len(tasks), 1)))
    with tqdm(total=len(tasks), desc=desc, unit="seq", disable=not progress) as bar:
        if workers == 1:
            outcomes, pool = map(fn, tasks), None
        else:
            pool = multiprocessing.get_context().Pool(workers)
            outcomes = pool.imap_unordered(fn, tasks, chunksize=max(1, min(16, len(tasks) // (4 * workers))))
        try:
            for res in outcomes:
                yield res
                bar.update()
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()


def _generate(task: tuple[str, str, int, int, int, str]) -> tuple[float, float] | None:
    """Worker: write one sequence unless it is already complete; returns its motion or None if skipped."""
    root, split, index, seed, length, policy = task
    target = sequence_dir(Path(root), split, index)
    if target.is_dir():
        return None
    r = rollout(sequence_seed(seed, split, index), length, SimConfig(), labels=True, flow=True, policy=policy,
                poses=True)
    write_sequence(target, r.frames, r.actions, r.positions, labels=r.labels, flow=r.flow, poses=r.poses)
    return sequence_motion(r.frames, r.object_pixels)


def checked_counts(counts: dict[str, int]) -> dict[str, int]:
    """``counts`` as sequences per split for every split (missing ones 0); a ValueError for an unknown
    split or a negative count."""
    unknown = set(counts) - set(SPLITS)
    if unknown:
        raise ValueError(f"write_dataset: unknown split(s) {sorted(unknown)}; expected {list(SPLITS)}")
    out = {s: int(counts.get(s, 0)) for s in SPLITS}
    if any(v < 0 for v in out.values()):
        raise ValueError(f"write_dataset: counts must be >= 0, got {out}")
    return out


def _manifest(seed: int, counts: dict[str, int], length: int, policy: str) -> dict:
    """The dataset's provenance, with every sequence's seed (``sequence_seeds``: {split: [seed of
    sequence 0, 1, ...]}) and the data policy, so a held-out sequence can be started in the true world
    (`recorded_seeds`, `recorded_policy`)."""
    seeds = {s: [sequence_seed(seed, s, i) for i in range(n)] for s, n in counts.items() if n}
    return {"generator": "bair_world.sim", "generator_version": GENERATOR_VERSION, "seed": seed, "counts": counts,
            "sequence_length": length, "image_size": 64, "action_columns": ACTION_COLUMNS,
            "sim_config": asdict(SimConfig()), "targets": TARGETS, "policy": policy, "sequence_seeds": seeds}


def write_dataset(out: str | Path, counts: dict[str, int] | None = None, seed: int = DEFAULT_SEED,
                  workers: int | None = None, progress: bool = True, length: int = SEQUENCE_LENGTH,
                  policy: str = DEFAULT_POLICY) -> SynthReport:
    """Write sequences of the pushing world in the BAIR folder layout, resuming a partial run.

    Args:
        out: dataset root; `<out>/<split>/traj_<a>_to_<b>/<index>/{0..T-1}.png, actions.csv,
            endeffector_positions.csv, labels.npz, flow.npz, poses.npz` and `<out>/manifest.json` (written last).
        counts: sequences per split (missing splits get 0); default DEFAULT_COUNTS.
        seed: dataset seed; sequence seeds derive from (seed, split, index).
        workers: processes (default: all cores); 1 runs in this process.
        progress: show a tqdm progress bar.
        length: frames per sequence.
        policy: what drives the sequences (`bair_world.sim.policy.POLICIES`), recorded in the manifest.

    Raises:
        ValueError: bad counts/seed/policy, or `out` holds a dataset made with another seed, generator
            version, length, targets (an older bair-world's without flow) or policy.
        DataError: a split, trajectory or sequence folder it would write into or remove is a symbolic
            link (`_refuse_links`); nothing is written.

    A rerun with smaller counts removes the sequences past them that it wrote, and nothing else
    (`_remove_beyond`); what it did not write is left alone and named in the report (``kept``).
    """
    root = Path(out)
    counts = checked_counts(DEFAULT_COUNTS if counts is None else counts)
    check_policy(policy)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"write_dataset: seed must be a non-negative integer, got {seed!r}")
    if length < 2:
        raise ValueError(f"write_dataset: length must be >= 2, got {length}")
    command = (f"bair-world data synth --out {root} --seed {seed} --policy {policy} "
               + " ".join(f"--{s} {counts[s]}" for s in SPLITS))
    params = {"writer": "synth", "generator_version": GENERATOR_VERSION, "seed": int(seed), "counts": counts,
              "sequence_length": length, "targets": TARGETS, "policy": policy}
    try:
        with PidLock(root / LOCK):
            return _write_locked(root, counts, seed, workers, progress, length, policy, command, params)
    except LockBusy as busy:
        raise ValueError(f"{root}: another `bair-world data synth` (pid {busy.pid}) is writing this folder; "
                         f"wait for it to finish") from None


def _write_locked(root: Path, counts: dict[str, int], seed: int, workers: int | None, progress: bool, length: int,
                  policy: str, command: str, params: dict) -> SynthReport:
    """`write_dataset` once it holds the folder's lock."""
    manifest_path = root / MANIFEST
    check_resume(root, command, params)  # an interrupted run continues only with the same command
    if manifest_path.exists():
        old = _read_manifest(manifest_path)
        made = (old.get("seed"), old.get("generator_version"), old.get("sequence_length"),
                old.get("policy", DEFAULT_POLICY),  # written before policies were recorded: scripted
                old.get("targets", ["labels"]))  # written before flow was recorded: labels only
        if made != (seed, GENERATOR_VERSION, length, policy, TARGETS):
            raise ValueError(f"{manifest_path}: folder holds a dataset with seed {made[0]}, generator version "
                             f"{made[1]}, length {made[2]}, policy {made[3]}, targets {made[4]}; refusing to mix in "
                             f"seed {seed}, version {GENERATOR_VERSION}, length {length}, policy {policy}, "
                             f"targets {TARGETS} (choose another --out)")
    _refuse_links(root)  # before anything is written
    mark_incomplete(root, command, params)
    if any((root / split).is_dir() for split in SPLITS):
        remove_partial_writes(root)  # every writer of this folder is dead: we hold its lock
    tasks = [(str(root), split, i, int(seed), length, policy) for split in SPLITS for i in range(counts[split])]
    start = time.perf_counter()
    outcomes = list(_in_pool(_generate, tasks, workers, progress, "synth"))
    results = [res for res in outcomes if res is not None]
    skipped = len(outcomes) - len(results)
    removed, kept = _remove_beyond(root, counts)  # a rerun with smaller counts: the manifest lists all there is
    atomic_write_json(manifest_path, _manifest(int(seed), counts, length, policy))
    mark_complete(root)
    return SynthReport(root, counts, len(results), skipped, time.perf_counter() - start, motion_stats(results),
                       removed, kept)


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DataError(path, f"unreadable dataset manifest ({type(exc).__name__}: {str(exc)[:200]}); delete "
                              f"{path.parent} to start over") from None
    if not isinstance(manifest, dict):
        raise DataError(path, "dataset manifest is not a JSON object; delete its folder to start over")
    return manifest


_TRAJ_NAME = re.compile(r"traj_(0|[1-9][0-9]*)_to_(0|[1-9][0-9]*)")  # what `sequence_dir` names
_INDEX_NAME = re.compile(r"0|[1-9][0-9]*")
_WRITTEN_FILES = re.compile(r"(0|[1-9][0-9]*)\.png|" + "|".join(re.escape(name) for name in (
    ACTIONS_FILE, POSITIONS_FILE, LABELS_FILE, FLOW_FILE, POSES_FILE)))  # what `write_sequence` puts in a sequence folder


def _visible(folder: Path) -> list[Path]:
    """The entries of ``folder`` not hidden (hidden ones are staging folders: `remove_partial_writes`), sorted."""
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: natural_key(p.name))


def _refuse_links(root: Path) -> None:
    """Refuse a dataset in which a split, trajectory or sequence folder `write_dataset` would write into,
    skip or remove (the names `sequence_dir` gives) is a symbolic link: it writes and removes only inside
    ``root``, so nothing outside it is ever written through a link or deleted in its target.

    Raises:
        DataError: naming the first such link and where it points.
    """
    def check(path: Path) -> None:
        if path.is_symlink():
            raise DataError(path, f"is a symbolic link (to {os.readlink(path)}); `data synth` writes and removes only "
                                  f"inside {root}: replace the link with the folder itself, or choose another --out")

    for split in SPLITS:
        split_dir = root / split
        check(split_dir)
        if not split_dir.is_dir():
            continue
        for traj in _visible(split_dir):
            if _TRAJ_NAME.fullmatch(traj.name):
                check(traj)
                if traj.is_dir():
                    for seq in _visible(traj):
                        if _INDEX_NAME.fullmatch(seq.name):
                            check(seq)


def _written_sequence(seq: Path, root: Path, split: str) -> bool:
    """Whether ``seq`` is a sequence folder `write_dataset` wrote: a real folder at the place `sequence_dir`
    gives its index, holding only regular files `write_sequence` writes, its CSVs and ``0.png`` among them."""
    if not _INDEX_NAME.fullmatch(seq.name) or seq != sequence_dir(root, split, int(seq.name)):
        return False
    if seq.is_symlink() or not seq.is_dir():
        return False
    try:
        entries = list(os.scandir(seq))
    except OSError:
        return False
    if not all(e.is_file(follow_symlinks=False) and _WRITTEN_FILES.fullmatch(e.name) for e in entries):
        return False
    return {ACTIONS_FILE, POSITIONS_FILE, "0.png"} <= {e.name for e in entries}


def _remove_beyond(root: Path, counts: dict[str, int]) -> tuple[int, list[Path]]:
    """Delete the sequence folders this writer wrote with an index past ``counts`` (left by a run with
    larger counts), and the trajectory and split folders that emptied.

    Only what `_written_sequence` recognises is removed; no symbolic link is followed (`_refuse_links`
    has refused them where it would descend). Everything else in the split folders (a user's
    ``traj_0_to_255/my_notes/``, a file, a sequence folder holding other files) is left alone.

    Returns:
        (how many sequences were removed, the entries left alone as not written by this writer).
    """
    removed, foreign = 0, []
    for split in SPLITS:
        split_dir = root / split
        if split_dir.is_symlink() or not split_dir.is_dir():
            continue
        emptied = False
        for traj in _visible(split_dir):
            if traj.is_symlink() or not traj.is_dir() or not _TRAJ_NAME.fullmatch(traj.name):
                foreign.append(traj)
                continue
            took = False
            for seq in _visible(traj):
                if not _written_sequence(seq, root, split):
                    foreign.append(seq)
                elif int(seq.name) >= counts[split]:
                    shutil.rmtree(seq)
                    removed += 1
                    took = True
            if took and not any(traj.iterdir()):
                traj.rmdir()
                emptied = True
        if emptied and not any(split_dir.iterdir()):
            split_dir.rmdir()
    return removed, foreign


def write_packed(out: str | Path, counts: dict[str, int] | None = None, seed: int = DEFAULT_SEED,
                 workers: int | None = None, progress: bool = True, length: int = SEQUENCE_LENGTH,
                 policy: str = DEFAULT_POLICY) -> SynthReport:
    """Write the same sequences as `write_dataset` straight into the packed form (`bair_world.data.packed`).

    No PNG or CSV round trip: the arrays (labels and flow included) equal those `pack_dataset` makes of
    `write_dataset`'s folder.
    Written atomically into a new folder ``out``; an interrupted run leaves nothing (no resume).
    """
    from bair_world.data.packed import PackWriter

    counts = checked_counts(DEFAULT_COUNTS if counts is None else counts)
    check_policy(policy)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"write_packed: seed must be a non-negative integer, got {seed!r}")
    if length < 2:
        raise ValueError(f"write_packed: length must be >= 2, got {length}")
    tasks = [(str(out), split, i, int(seed), length, policy) for split in SPLITS for i in range(counts[split])]
    start, motions = time.perf_counter(), []
    with PackWriter(out, counts, length, labels=set(SPLITS), source=_manifest(int(seed), counts, length, policy),
                    flow=set(SPLITS), poses=set(SPLITS)) as writer:
        for split, index, frames, actions, positions, labels, flow, poses, motion in _in_pool(
                _arrays, tasks, workers, progress, "synth"):
            writer.put(split, index, frames, actions, positions, labels, flow, poses=poses)
            motions.append(motion)
    return SynthReport(Path(out), counts, len(tasks), 0, time.perf_counter() - start, motion_stats(motions))


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `bair-world data synth`."""
    parser.add_argument("--out", required=True, help="dataset root to write (resumes a partial run)")
    for split in SPLITS:
        parser.add_argument(f"--{split}", type=int, default=DEFAULT_COUNTS[split],
                            help=f"sequences in the {split} split (default {DEFAULT_COUNTS[split]})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="dataset seed (default 0)")
    parser.add_argument("--policy", default=DEFAULT_POLICY, metavar="{" + ",".join(POLICIES) + "}",
                        help="what drives the arm: the scripted pusher (default), nearest-object pushes, random "
                             "actions, or mixed (each sequence one of them, drawn from its seed: "
                             + ", ".join(f"{round(share * 100)}%% {name}" for name, share in MIXED_SHARES) + ")")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """`bair-world data synth`: write the dataset and print a summary."""
    counts = {s: getattr(args, s) for s in SPLITS}  # a write cut short leaves the dataset marked incomplete
    print(write_dataset(args.out, counts, seed=args.seed, workers=args.workers, progress=not args.no_progress,
                        policy=args.policy))
    return 0
