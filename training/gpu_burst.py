"""A GPU burst for a CPU training campaign: resume a run on a lent CUDA machine for a few minutes at a
larger batch and bring its checkpoint back.

    python training/gpu_burst.py pack RUN_DIR            # here: RUN_DIR's resumable state -> .burst/ (+ wheels)
    # the `device` tool, once (`carry: [".burst", ".whl"]`, `timeout_s: 590`), the command `pack` prints:
    python3 training/gpu_burst.py train --minutes 8 --batch-size 64 --out $OUT
    python training/gpu_burst.py unpack FILES_AT RUN_DIR  # here: the returned checkpoint becomes RUN_DIR/last

Why three steps: the device machine gets a copy of the working tree and ignored paths named in
``carry`` (64 MiB in all), has no internet, and returns at most 8 files of 16 MiB from ``$OUT``. So
``pack`` copies only what ``--resume`` reads (``train_config.json``, ``metrics.jsonl``, ``last/``: ~37 MB)
into ``.burst/run`` and downloads the one wheel its Python lacks (gymnasium, imported by the package,
with its pure-Python dependency); ``train`` regenerates the embedded data there (16 cores), resumes with
``--device cuda --amp bf16`` and the larger batch, then tars the run's ``last/`` (and ``best/`` when it
improved), ``metrics.jsonl`` and ``train.log`` and splits the tar into 15 MiB parts with a SHA-256
manifest; ``unpack`` checks the parts, refuses a run that trained on here since ``pack`` (its
``last/`` step moved), and swaps the returned ``last/`` in with renames, keeping the old one as
``last.before-burst``.

``train --allow-cpu`` runs the same path on a machine without CUDA (how it is tested).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from bair_world.cli_errors import CommandError, run_command

REPO = Path(__file__).resolve().parents[1]
BURST = REPO / ".burst"
WHEELS = REPO / ".whl"
PART_BYTES = 15 * 2**20  # under the 16 MiB a returned file may have
PACKED = ("train_config.json", "metrics.jsonl", "last")
CARRY_LIMIT = 60 * 2**20  # the working tree travels too (~13 MB) within 64 MiB
DEVICE_WHEELS = ("gymnasium==1.4.0", "farama-notifications==0.0.6")  # the packages the CUDA image lacks
MANIFEST = "burst-manifest.json"


class BurstError(CommandError):
    """A burst step that cannot go on; the message names the file and the problem."""


def _step(checkpoint: Path) -> int:
    try:
        return int(json.loads((checkpoint / "config.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BurstError(f"{checkpoint / 'config.json'}: no readable step ({e})") from e


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def pack(run: Path, wheels: bool = True, burst: Path = BURST) -> Path:
    """Copy ``run``'s resumable state into ``burst/run`` (replacing an older pack) and, with ``wheels``,
    download `DEVICE_WHEELS` into ``.whl``; returns the packed run folder."""
    missing = [name for name in PACKED if not (run / name).exists()]
    if missing:
        raise BurstError(f"{run}: not a resumable run folder (missing {', '.join(missing)})")
    step = _step(run / "last")
    staging = burst / "run.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in PACKED:
        (shutil.copytree if (run / name).is_dir() else shutil.copy2)(run / name, staging / name)
    if _size(staging) > CARRY_LIMIT:
        shutil.rmtree(staging)
        raise BurstError(f"{run / 'last'}: {_size(run / 'last') / 2**20:.0f} MiB is over what the device may carry")
    (staging / "burst-from.json").write_text(json.dumps({"run": str(run.resolve()), "step": step}))
    shutil.rmtree(burst / "run", ignore_errors=True)
    os.replace(staging, burst / "run")
    if wheels:
        download = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                                   "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
                                   "--platform", "any", "--platform", "manylinux2014_x86_64", "-d", str(WHEELS),
                                   *DEVICE_WHEELS])
        if download.returncode != 0:
            raise BurstError(f"{WHEELS}: pip download of {', '.join(DEVICE_WHEELS)} failed (exit status "
                             f"{download.returncode}); --no-wheels skips it")
    return burst / "run"


def device_command(minutes: float, batch_size: int) -> str:
    """The shell command for the device tool's ``run`` (carry ``.burst`` and ``.whl``)."""
    return ("python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && "
            f"export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 && nvidia-smi -L && python3 training/gpu_burst.py "
            f"train --minutes {minutes:g} --batch-size {batch_size} --out $OUT")


def train(minutes: float, batch_size: int, out: Path, allow_cpu: bool = False, extra: list[str] = (),
          burst: Path = BURST) -> int:
    """Resume ``burst/run`` for ``minutes`` (setup and data generation included) at ``batch_size`` on
    CUDA, then write the result's parts into ``out``; returns the trainer's exit status."""
    import torch

    if not torch.cuda.is_available() and not allow_cpu:
        raise BurstError("no CUDA device here (train --allow-cpu runs the same path on the CPU)")
    run = burst / "run"
    if not (run / "last").is_dir():
        raise BurstError(f"{run}: no packed run (run `gpu_burst.py pack RUN_DIR` first and carry .burst)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    amp = "bf16" if device == "cuda" else "none"
    threads = str(os.cpu_count() or 1)
    cmd = [sys.executable, str(REPO / "training" / "train.py"), "--resume", str(run), "--device", device,
           "--amp", amp, "--batch-size", str(batch_size), "--max-minutes", f"{minutes:g}", "--threads", threads,
           "--no-progress", *extra]
    print("[burst]", " ".join(cmd), flush=True)
    rc = subprocess.run(cmd, cwd=REPO).returncode
    write_parts(run, out)
    return rc


def write_parts(run: Path, out: Path) -> list[Path]:
    """Tar ``run``'s ``last/`` (``best/`` if trained there), ``metrics.jsonl`` and ``train.log`` into
    `PART_BYTES` parts in ``out`` with a `MANIFEST` of their SHA-256."""
    out.mkdir(parents=True, exist_ok=True)
    tar_path = out / "burst.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name in ("last", "best", "metrics.jsonl", "train.log", "burst-from.json"):
            if (run / name).exists():
                tar.add(run / name, arcname=name)
    parts, digest = [], hashlib.sha256()
    with open(tar_path, "rb") as f:
        while chunk := f.read(PART_BYTES):
            digest.update(chunk)
            parts.append(out / f"burst.tar.{len(parts):02d}")
            parts[-1].write_bytes(chunk)
    tar_path.unlink()
    manifest = {"parts": [p.name for p in parts], "sha256": digest.hexdigest()}
    (out / MANIFEST).write_text(json.dumps(manifest))
    return parts


def _join(files: Path, into: Path) -> Path:
    """The parts in ``files`` joined into ``into/burst.tar``, checked against the manifest."""
    try:
        manifest = json.loads((files / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise BurstError(f"{files / MANIFEST}: unreadable ({e})") from e
    tar_path, digest = into / "burst.tar", hashlib.sha256()
    with open(tar_path, "wb") as tar:
        for name in manifest["parts"]:
            if not (files / name).is_file():
                raise BurstError(f"{files / name}: missing (the manifest lists {len(manifest['parts'])} parts)")
            chunk = (files / name).read_bytes()
            digest.update(chunk)
            tar.write(chunk)
    if digest.hexdigest() != manifest["sha256"]:
        raise BurstError(f"{files}: the parts do not add up to the manifest's SHA-256 (a part is corrupt or stale)")
    return tar_path


def unpack(files: Path, run: Path) -> int:
    """Swap the burst's ``last/`` into ``run`` (and ``best/`` when its validation PSNR is higher) and take
    its ``metrics.jsonl``; refuses when ``run/last`` is no longer the step that was packed. Returns the
    step now in ``run/last``."""
    staging = run / "burst.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        with tarfile.open(_join(files, staging)) as tar:
            tar.extractall(staging, filter="data")
        packed_step = json.loads((staging / "burst-from.json").read_text())["step"]
        if _step(run / "last") != packed_step:
            raise BurstError(f"{run / 'last'}: at step {_step(run / 'last')}, not the packed {packed_step}: the run "
                             "trained here since `pack`; keep one of the two (move it away, then unpack again)")
        shutil.rmtree(run / "last.before-burst", ignore_errors=True)
        os.replace(run / "last", run / "last.before-burst")
        os.replace(staging / "last", run / "last")
        if (staging / "best").is_dir() and _val(staging / "best") > _val(run / "best"):
            shutil.rmtree(run / "best.before-burst", ignore_errors=True)
            if (run / "best").exists():
                os.replace(run / "best", run / "best.before-burst")
            os.replace(staging / "best", run / "best")
        os.replace(staging / "metrics.jsonl", run / "metrics.jsonl")
        if (staging / "train.log").is_file():
            os.replace(staging / "train.log", run / "train-burst.log")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _step(run / "last")


def _val(checkpoint: Path) -> float:
    try:
        return float(json.loads((checkpoint / "config.json").read_text())["metrics"]["val_psnr"])
    except (OSError, ValueError, KeyError, TypeError):
        return float("-inf")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """The verbs pack (here), train (on the device) and unpack (here) and their options."""
    sub = parser.add_subparsers(dest="verb", required=True)
    a = sub.add_parser("pack", help="here: copy RUN_DIR's resumable state into .burst/ and fetch the wheels")
    a.add_argument("run", type=Path)
    a.add_argument("--no-wheels", action="store_true", help="skip the wheel download")
    a.add_argument("--minutes", type=float, default=8.0, help="training minutes the printed command asks for")
    a.add_argument("--batch-size", type=int, default=64, help="batch size the printed command asks for")
    b = sub.add_parser("train", help="on the device: resume .burst/run on CUDA, write the parts to --out "
                                     "(other options go to train.py)")
    b.add_argument("--minutes", type=float, default=8.0, help="the whole invocation's budget (default 8)")
    b.add_argument("--batch-size", type=int, default=64, help="batch size on the GPU (default 64)")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--allow-cpu", action="store_true", help="run on the CPU when no CUDA device is seen")
    c = sub.add_parser("unpack", help="here: put the returned checkpoint into RUN_DIR")
    c.add_argument("files", type=Path, help="the folder the device tool returned the parts into")
    c.add_argument("run", type=Path)
    for q in (a, b):
        q.add_argument("--burst-dir", type=Path, default=BURST, help=f"where the packed run lives (default {BURST})")


def run(args: argparse.Namespace) -> int:
    """Do ``args.verb``; ``args.extra`` are train.py options for the verb train."""
    if args.verb == "pack":
        packed = pack(args.run, wheels=not args.no_wheels, burst=args.burst_dir)
        print(f"[burst] packed {args.run} at step {_step(args.run / 'last')} into {packed}; on the device "
              f"(carry .burst and .whl, timeout_s 590):\n{device_command(args.minutes, args.batch_size)}")
        return 0
    if args.verb == "train":
        return train(args.minutes, args.batch_size, args.out, args.allow_cpu, args.extra, args.burst_dir)
    print(f"[burst] {args.run}/last is now step {unpack(args.files, args.run)}; resume it here as before")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python training/gpu_burst.py VERB``; unknown options pass to train.py under ``train``."""
    parser = argparse.ArgumentParser(prog="gpu_burst.py", description=__doc__.split("\n\n")[0])
    configure_parser(parser)
    args, extra = parser.parse_known_args(argv)
    args.extra = extra
    if args.extra and args.verb != "train":
        parser.error(f"unrecognized arguments: {' '.join(args.extra)}")
    return run_command(f"gpu_burst.py {args.verb}", lambda: run(args), args.out if args.verb == "train" else None)


if __name__ == "__main__":
    raise SystemExit(main())
