"""What a run writes besides checkpoints: metrics (CSV, JSONL, TensorBoard), plots, sample GIFs and
the text log ``train.log`` (every ``[train]`` line the run prints).

A run stopped inside an epoch (budget, SIGINT/SIGTERM) logs that epoch's row too, with
``partial`` true, ``stopped`` (why), ``batches`` of ``epoch_batches`` trained and the validation
at the stop; the resumed run logs the complete epoch again when it ends, so the rows without
``partial`` are those of an uninterrupted run. Plots place a partial row at its fraction of the
epoch.

Only rank 0 of a distributed run constructs a `RunReporter`. Every file is rewritten atomically
(temporary sibling, then ``os.replace``) from the in-memory history, so a run killed at any moment
leaves complete files, and a resumed run continues them without duplicated or half-written rows.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bair_world.configtypes import is_number
from bair_world.io import atomic_write_bytes, remove_stale_temporaries

# The per-epoch columns, in the order of metrics.csv.
COLUMNS = ("epoch", "step", "loss", "mse", "kl", "beta", "tf_ratio", "val_psnr", "baseline_psnr",
           "seq_per_s", "epoch_s", "lr", "partial", "stopped", "batches", "epoch_batches")
LOG_FILE = "train.log"
"""The run's text log (appended to by every invocation on the run folder)."""


class RunReporter:
    """Writes a run folder's metrics.csv, metrics.jsonl, TensorBoard events and PNG plots.

    Args:
        run_dir: the run folder.
        history: per-epoch rows already logged (from a resumed run's checkpoint), else empty.
        resume_step: global step the run resumes at; TensorBoard events after it are purged.
    """

    def __init__(self, run_dir: Path, history: list[dict[str, Any]] | None = None, resume_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter  # slow import: only on rank 0

        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        removed = [p for folder in (self.run_dir, self.run_dir / "samples")  # e.g. samples/.epoch_*.tmp-*.gif
                   for p in remove_stale_temporaries(folder)]
        if removed:
            print(f"removed {len(removed)} temporary file(s) of killed processes in {self.run_dir}", file=sys.stderr)
        self.history: list[dict[str, Any]] = list(history or [])
        self.tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=resume_step)

    def log_text(self, line: str) -> None:
        """Append ``line`` to the run's ``train.log``, with the wall-clock time."""
        import time

        with open(self.run_dir / LOG_FILE, "a", encoding="utf-8") as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

    def say(self, line: str) -> None:
        """Print ``line`` (stdout, flushed) and append it to ``train.log``."""
        print(line, flush=True)
        self.log_text(line)

    def log_step(self, step: int, values: dict[str, float]) -> None:
        """Per-optimiser-step scalars (TensorBoard only), under ``train_step/``."""
        for key, value in values.items():
            self.tb.add_scalar(f"train_step/{key}", value, step)

    def log_epoch(self, row: dict[str, Any]) -> None:
        """Append one epoch's metrics and rewrite the CSV, JSONL and plots."""
        self.history.append(dict(row))
        for key, value in row.items():
            if key not in ("epoch", "step", "partial", "batches", "epoch_batches") and is_number(value):
                self.tb.add_scalar(f"epoch/{key}", value, row["step"])
        self.tb.flush()
        self._write_tables()
        plot_history(self.history, self.run_dir)

    def _write_tables(self) -> None:
        columns = list(COLUMNS) + sorted({k for r in self.history for k in r} - set(COLUMNS))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for r in self.history:
            writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
        atomic_write_bytes(self.run_dir / "metrics.csv", buf.getvalue().encode())
        lines = "".join(json.dumps(r, allow_nan=True) + "\n" for r in self.history)
        atomic_write_bytes(self.run_dir / "metrics.jsonl", lines.encode())

    def close(self) -> None:
        self.tb.close()


def _save_figure(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def plot_history(history: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Write loss.png (loss, MSE, KL), psnr.png (model vs copy-last-frame) and schedules.png (beta,
    teacher forcing) per epoch. Returns the written paths."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from matplotlib.ticker import MaxNLocator

    if not history:
        return []
    epochs = [epoch_position(r) for r in history]
    col = lambda k: [math.nan if r.get(k) is None else r[k] for r in history]  # noqa: E731
    paths = []

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, col("loss"), "o-", label="loss")
    ax.plot(epochs, col("mse"), "s-", label="MSE")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss, MSE")
    ax2 = ax.twinx()
    ax2.plot(epochs, col("kl"), "^-", color="tab:red", label="KL")
    ax2.set_ylabel("KL (nats, summed over z)")
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(lines, ["loss", "MSE", "KL"], loc="upper right")
    ax.set_title("training loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs, however few
    _save_figure(fig, out_dir / "loss.png")
    plt.close(fig)
    paths.append(out_dir / "loss.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, col("val_psnr"), "o-", label="model (1 prior sample)")
    baseline = [b for b in col("baseline_psnr") if not math.isnan(b)]
    if baseline:
        ax.axhline(baseline[-1], color="gray", linestyle="--", label=f"copy last frame ({baseline[-1]:.2f} dB)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation PSNR (dB)")
    ax.legend()
    ax.set_title("validation PSNR")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs, however few
    _save_figure(fig, out_dir / "psnr.png")
    plt.close(fig)
    paths.append(out_dir / "psnr.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, col("beta"), "o-", label="beta (end of epoch)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("beta")
    ax2 = ax.twinx()
    ax2.plot(epochs, col("tf_ratio"), "s-", color="tab:green", label="teacher forcing")
    ax2.set_ylabel("teacher-forcing ratio")
    ax2.set_ylim(0, 1.05)
    ax.legend(ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0],
              ["beta", "teacher forcing"], loc="center right")
    ax.set_title("schedules")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs, however few
    _save_figure(fig, out_dir / "schedules.png")
    plt.close(fig)
    paths.append(out_dir / "schedules.png")
    return paths


def epoch_position(row: dict[str, Any]) -> float:
    """Where a row sits on the epoch axis: its epoch number, or for a partial row (stopped inside the
    epoch) the epoch before plus the fraction of its batches trained."""
    if row.get("partial") and row.get("epoch_batches"):
        return row["epoch"] - 1 + row["batches"] / row["epoch_batches"]
    return row["epoch"]


def write_sample_gif(path: Path, truth: torch.Tensor, pred: torch.Tensor, n_past: int, fps: int = 4) -> Path:
    """A GIF of sequences over time: each row is one sequence, ground truth | prediction.

    Args:
        path: the .gif file.
        truth: (B, T, 3, 64, 64) ground truth in [0, 1], T = n_past + n_future.
        pred: (B, T - n_past, 3, 64, 64) predictions of frames n_past .. T-1.
        n_past: context frames (shown in both columns; the prediction column gets a red border after).
        fps: frames per second.
    """
    from bair_world.video import write_gif

    b, t = truth.shape[:2]
    full = torch.cat([truth[:, :n_past], pred.to(truth.dtype)], dim=1)  # (B, T, 3, 64, 64)
    frames = []
    for i in range(t):
        # (B, 3, 64, 64) x 2 -> (B, 3, 64, 130): truth | 2 px gap | prediction
        gap = torch.ones(b, 3, 64, 2)
        pred_frame = full[:, i].clone()
        if i >= n_past:  # mark predicted frames
            pred_frame[:, 0, :, :1] = pred_frame[:, 0, :, -1:] = 1
            pred_frame[:, 1:, :, :1] = pred_frame[:, 1:, :, -1:] = 0
        row = torch.cat([truth[:, i].float().cpu(), gap, pred_frame.float().cpu()], dim=3)
        grid = row.permute(0, 2, 3, 1).reshape(b * 64, 130, 3)  # (B, 3, 64, 130) -> (B*64, 130, 3)
        frames.append((grid.clamp(0, 1).numpy() * 255).round().astype(np.uint8))
    return write_gif(path, np.stack(frames), fps=fps)  # (T, B*64, 130, 3), atomically
