"""The embedded dataset in the folder layout vs packed: files, bytes, generation time, loader speed, training memory.

    python benchmarks/bench_data.py --out /tmp/bench-data [--train 512 --validate 32 --test 64 --steps 60]

Writes the same synthetic sequences both ways under ``--out`` (which must not exist), then measures
for each: files and bytes on disk, wall time to generate (``--workers`` processes), training-loader
throughput (random batches of 16 from the train split, as train.py draws them, no worker processes),
and the peak resident memory of a `cpu`-preset training run of ``--steps`` steps (a subprocess; the
folder run keeps decoded sequences in memory as train.py's default ``cache_data`` does). Prints a table.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from bair_world.data import collate
from bair_world.data.open import open_dataset
from bair_world.data.synthetic import write_dataset, write_packed
from bair_world.training.data import EpochSampler

REPO = Path(__file__).resolve().parents[1]
BATCH = 16


def disk_usage(root: Path) -> tuple[int, int, int]:
    """(files, bytes of content, bytes allocated on disk) under ``root``."""
    files = [p.stat() for p in root.rglob("*") if p.is_file()]
    return len(files), sum(s.st_size for s in files), sum(s.st_blocks * 512 for s in files)


def loader_rate(root: Path, batches: int, cache: bool) -> float:
    """Sequences/s of train.py's loader (random batches, 30-step sequences) over the first ``batches`` batches."""
    dataset = open_dataset(root, "train", cache=cache)
    sampler = EpochSampler(len(dataset), batches * BATCH, 0, 0, 1)
    loader = DataLoader(dataset, batch_size=BATCH, sampler=sampler, collate_fn=collate, drop_last=True)
    start = time.perf_counter()
    n = sum(batch.frames.shape[0] for batch in loader)
    return n / (time.perf_counter() - start)


def training_peak_mib(root: Path, steps: int, log_dir: Path) -> tuple[float, float]:
    """(peak RSS MiB, wall seconds) of a one-epoch `cpu`-preset run of ``steps`` steps on ``root``."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    cmd = [sys.executable, "-c", code, sys.executable, str(REPO / "training" / "train.py"), "--data-root", str(root),
           "--epochs", "1", "--epoch-size", str(steps), "--val-sequences", "32", "--sample-every", "0",
           "--no-progress", "--threads", "1", "--log-dir", str(log_dir), "--name", root.name]
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1]) / 1024, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="work folder (created; must not exist)")
    parser.add_argument("--train", type=int, default=512)
    parser.add_argument("--validate", type=int, default=32)
    parser.add_argument("--test", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=40, help="loader batches timed")
    parser.add_argument("--steps", type=int, default=60, help="training steps of the memory run (0: skip it)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True)
    counts = {"train": args.train, "validate": args.validate, "test": args.test}
    rows = []
    for form, write in (("folder", write_dataset), ("packed", write_packed)):
        root = args.out / form
        report = write(root, counts, seed=0, workers=args.workers, progress=False)
        files, size, allocated = disk_usage(root)
        row = {"form": form, "files": files, "MiB": size / 2**20, "MiB on disk": allocated / 2**20,
               "generate s": report.seconds, "loader seq/s": loader_rate(root, args.batches, cache=False)}
        if args.steps:
            row["train peak MiB"], row["train s"] = training_peak_mib(root, args.steps, args.out / "runs")
        rows.append(row)
        print(f"{form}: done", file=sys.stderr, flush=True)
    keys = list(rows[0])
    print(f"{sum(counts.values())} sequences ({counts}), {args.workers} generator processes, "
          f"loader {args.batches} x {BATCH}, training {args.steps} steps; peak RSS of this process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print(" | ".join(f"{k:>14}" for k in keys))
    for row in rows:
        print(" | ".join(f"{v:>14.1f}" if isinstance(v, float) else f"{v!s:>14}" for v in row.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
