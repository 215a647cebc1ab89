"""Prediction quality at an equal training budget: model variants vs the copy-last-frame baseline.

    python benchmarks/quality_table.py [--minutes 20] [--threads 1] [--samples 5] [--only NAME ...]
                                       [--extra NAME=CHECKPOINT_DIR ...]

Each variant is trained on the embedded synthetic dataset (same data, same seed) for the same
wall-clock budget (``--minutes`` at ``--threads`` torch threads; ``max_minutes`` stops it and its
schedule is sized to end near the budget), then scored with ``training/evaluate.py``'s protocol on
the synthetic test split: 2 context -> 10 predicted frames, one prior sample (plus best-of-N over
``--samples`` draws), PSNR / per-channel PSNR / SSIM, and the copy-last-frame baseline on the same
sequences. Runs are kept under ``runs/<name>``: rerunning resumes an interrupted run and skips
finished ones, so the table can be rebuilt without retraining. ``--extra`` adds an already trained
checkpoint (e.g. the bundled model) to the table.

The variants answer the design questions of the training issue:

* ``fixed-1e-4``: the CPU model (DCGAN-64, fixed N(0, I) prior), beta ceiling 1e-4 (SVG's scale:
  pixel-mean MSE + beta * KL summed over z dimensions);
* ``fixed-beta1``: the same with beta ceiling 1, the seed's scale -> posterior collapse vs blur;
* ``learned-prior``: the same with SVG-LP's learned prior;
* ``seed-arch``: the seed's architecture (VGG-64, g=128, z=64, rnn=256) on the same schedule.

The KL column is the last epoch's mean KL per sequence step (near 0 = the latent is unused).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

from bair_world.models.config import model_preset
from bair_world.training import presets
from bair_world.training.config import TrainConfig
from bair_world.training.evaluate import evaluate, write_report
from bair_world.io import atomic_write_bytes
from bair_world.training.train import train as train_run

RUNS = Path("runs")


def _base(minutes: float, threads: int) -> TrainConfig:
    # The bundled recipe (2 -> 10 horizon, batch 16, teacher forcing decay) with its schedule sized
    # to the budget: ~1.1 s per step for the CPU model at 1 thread on a 2-core machine.
    steps = max(20, int(minutes * 60 / 1.1))
    epochs = 10
    return presets.training_preset("bundled_base").replace(
        epochs=epochs, epoch_size=max(2, steps // epochs), tfr_start_decay_epoch=2, tfr_decay_step=0.1,
        max_minutes=minutes, threads=threads, progress=False, sample_every=0)


def variants(minutes: float, threads: int) -> dict[str, TrainConfig]:
    """name -> config of every trained row of the table."""
    base = _base(minutes, threads)
    seed_model = dataclasses.replace(model_preset("seed", n_past=2))
    seed_steps = max(10, int(minutes * 60 / 9.0))  # ~9 s per batch-16 step for the seed model
    return {
        "fixed-1e-4": base,
        "fixed-beta1": base.replace(max_beta=1.0),
        "learned-prior": base.replace(model=dataclasses.replace(base.model, prior="learned")),
        "seed-arch": base.replace(model=seed_model, epoch_size=max(1, seed_steps // base.epochs)),
    }


def _finished(run: Path) -> bool:
    """Whether a run reached its planned last epoch or its budget (summary written by this script)."""
    return (run / "quality_train.json").is_file() and (run / "best").is_dir()


def train(name: str, cfg: TrainConfig) -> dict:
    """Train (or resume, or skip) one variant; returns its training summary."""
    run = RUNS / name
    if _finished(run):
        return json.loads((run / "quality_train.json").read_text())
    cfg = cfg.replace(log_dir=RUNS, name=name)
    if (run / "last").is_dir():
        cfg = cfg.replace(resume=run)
    start = time.perf_counter()
    summary = train_run(cfg)
    keep = {k: summary[k] for k in ("epoch", "step", "best_val_psnr", "seq_per_s")}
    keep["wall_s"] = time.perf_counter() - start
    history = summary.get("history") or []
    keep["kl"] = history[-1].get("kl") if history else None
    atomic_write_bytes(run / "quality_train.json", json.dumps(keep, indent=2).encode())  # an interrupted write never reads as "finished"
    return keep


def score(checkpoint: Path, samples: int, out: Path) -> dict:
    """evaluate.py's report for a checkpoint on the synthetic test split (cached in ``out``)."""
    cached = out / "metrics.json"
    if cached.is_file() and json.loads(cached.read_text())["protocol"]["samples"] == samples:
        return json.loads(cached.read_text())
    report = evaluate(checkpoint, split="test", samples=samples, progress=False)
    write_report(report, out)
    return report


def _row(name: str, report: dict, trained: dict | None) -> str:
    m, b, base = report["model"], report["best_of_n"], report["baseline"]
    gain = m["psnr"]["mean"] - base["psnr"]["mean"]
    steps = "-" if trained is None else f"{trained['step']}"
    wall = "-" if trained is None else f"{trained['wall_s'] / 60:.1f}"
    kl = "-" if not trained or trained.get("kl") is None or not math.isfinite(trained["kl"]) else f"{trained['kl']:.3f}"
    return (f"| {name} | {steps} | {wall} | {kl} | {m['psnr']['mean']:.2f} | {gain:+.2f} | {b['psnr']['mean']:.2f} "
            f"| {m['finn_psnr']['mean']:.2f} | {m['ssim']['mean']:.4f} | {b['ssim']['mean']:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget per variant (wall clock)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training run")
    parser.add_argument("--samples", type=int, default=5, help="latent draws for best-of-N")
    parser.add_argument("--only", nargs="*", default=None, help="train/score only these variants")
    parser.add_argument("--extra", nargs="*", default=[], metavar="NAME=DIR", help="already trained checkpoints to score")
    parser.add_argument("--no-train", action="store_true", help="score only variants that finished training")
    args = parser.parse_args()

    rows, baseline = [], None
    header = ("| model | steps | train min | KL | PSNR (dB) | vs copy-last | best-of-N PSNR | PSNR/ch | SSIM | "
              "best-of-N SSIM |\n|---|---|---|---|---|---|---|---|---|---|")
    for spec in args.extra:
        name, _, path = spec.partition("=")
        report = score(Path(path), args.samples, RUNS / f"eval-{name}")
        baseline = report
        rows.append(_row(name, report, None))
    for name, cfg in variants(args.minutes, args.threads).items():
        if args.only and name not in args.only:
            continue
        if args.no_train and not _finished(RUNS / name):
            continue
        trained = train(name, cfg)
        report = score(RUNS / name / "best", args.samples, RUNS / f"eval-{name}")
        baseline = report
        rows.append(_row(name, report, trained))
        print(rows[-1], flush=True)
    if baseline is None:
        print("nothing to score")
        return
    b = baseline["baseline"]
    rows.insert(0, f"| copy-last-frame | - | - | - | {b['psnr']['mean']:.2f} | +0.00 | - | {b['finn_psnr']['mean']:.2f} "
                   f"| {b['ssim']['mean']:.4f} | - |")
    p, d = baseline["protocol"], baseline["data"]
    print(f"\n{d['sequences']} test sequences of {d['root']}, {p['n_past']} -> {p['n_future']} frames, "
          f"best-of-{p['samples']}, budget {args.minutes:g} min at {args.threads} thread(s) per variant\n")
    print(header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
