"""Learning curves of the motion path: every kept snapshot of some runs scored on the validate split.

    python benchmarks/learning_curves.py RUN_DIR [RUN_DIR ...] [--start NAME=CHECKPOINT]
        [--starts 16] [--every 200] [--watch MINUTES] [--cache curves.jsonl] [--plot curves.png]

Runs keep their model every few epochs (``train.py --snapshot-every N``: ``RUN_DIR/snapshots/step-N``).
Each snapshot (and each ``--start`` checkpoint, drawn at step 0 of every run: the common start) is
scored by the counterfactual evaluation (`bair_world.counterfactual`) on the first ``--starts``
sequences of the embedded data's validate split (candidates are chosen there; the test split stays
unseen), 2 context -> 28 predicted frames, one prior sample: the true pushing world started from each
sequence and driven, like the model, by scripted pushes, by random actions and by the recorded actions
(replay). Columns:

- one-step / free-running arrived recall under pushes (the share of the pixels objects arrived at that
  the model drew closer to the truth than to the reference frame; one-step: fed the true previous frame);
- flow cosine with the true flow at moving object pixels and the warp branch's weight where objects
  arrive (one-step, `bair_world.motion_diagnostics`);
- arm PSNR under pushes (free running) and objects PSNR under pushes minus copy-last's;
- random actions: PSNR, and SSIM's smallest margin over copy-last across the steps (> 0: above it at
  every step);
- replay PSNR and SSIM (recorded actions, free running).

Hours are hours of training: the run's epochs' optimisation time up to the snapshot (``metrics.jsonl``'s
``epoch_s``; validation and the pauses between resumed sittings left out), so runs trained side by side
on one machine compare at equal wall-clock and a campaign resumed over many sittings counts only what
it trained. ``--watch`` keeps scoring new
snapshots while runs train (scores are cached in ``--cache``, one JSON line per snapshot); with several
runs training at once the scorer slows them all alike.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

SOURCES = ("push", "random", "recorded")
COLUMNS = {  # column: (source, where in the source's report, key path)
    "arrived_recall_1step": ("push", ("table", "arrived_recall", "one_step")),
    "arrived_recall_free": ("push", ("table", "arrived_recall", "model")),
    "flow_cos_moving": ("push", ("motion", "one_step", "moving", "cosine", "mean")),
    "warp_arrived": ("push", ("motion", "one_step", "arrived", "warp", "mean")),
    "arm_psnr_push": ("push", ("table", "arm_psnr", "model")),
    "objects_margin_push": ("push", ("table", "objects_psnr"), "margin"),
    "random_psnr": ("random", ("table", "psnr", "model")),
    "random_ssim_margin_min": ("random", ("ssim",), "min_margin"),
    "replay_psnr": ("recorded", ("table", "psnr", "model")),
    "replay_ssim": ("recorded", ("table", "ssim", "model")),
}


def _dig(report: dict, path: tuple):
    for key in path:
        if not isinstance(report, dict) or report.get(key) is None:
            return None
        report = report[key]
    return report


def _column(source_report: dict, path: tuple, derive: str | None = None) -> float | None:
    """One column from one source's report: a value at ``path``; "margin": the model's table mean minus
    copy-last's; "min_margin": the smallest per-step margin of the model over copy-last."""
    if derive is None:
        value = _dig(source_report, path)
    elif derive == "margin":
        row = _dig(source_report, path) or {}
        value = None if None in (row.get("model"), row.get("copy_last")) else row["model"] - row["copy_last"]
    else:
        model, base = (_dig(source_report, (col, *path, "per_step")) for col in ("model", "copy_last"))
        pairs = zip(model or [], base or [])
        value = min((m - b for m, b in pairs if m is not None and b is not None), default=None)
    return None if value is None else float(value)


def score(checkpoint: Path, root: Path, starts: int, n_future: int = 28) -> dict[str, float | None]:
    """The columns of one checkpoint (see the module docstring)."""
    from bair_world import counterfactual

    report = counterfactual.evaluate(checkpoint, root, split="validate", sources=SOURCES, count=starts,
                                     n_future=n_future, sensitivity=False)
    return {name: _column(report["sources"][src], path, *derive)
            for name, (src, path, *derive) in COLUMNS.items()}


def training_hours(run: Path) -> dict[int, float]:
    """{step: hours of training up to it} from ``run/metrics.jsonl`` (the sum of the epochs' ``epoch_s``;
    a resumed run's rows for steps already logged replace the earlier ones, as resume rewinds)."""
    rows = {}
    path = run / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.is_file() else []:
        row = json.loads(line)
        rows[int(row["step"])] = float(row.get("epoch_s") or 0.0)
    total, out = 0.0, {}
    for step in sorted(rows):
        total += rows[step]
        out[step] = total / 3600.0
    return out


def snapshots(run: Path) -> list[tuple[int, Path, float]]:
    """(step, folder, hours of training up to it) of each complete snapshot of ``run``, by step (none
    while the run folder is still being made)."""
    if not (run / "train_config.json").is_file():
        return []
    hours = training_hours(run)
    out = []
    for folder in (run / "snapshots").glob("step-*"):
        if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
            step = int(folder.name.split("-")[1])
            out.append((step, folder, max((h for s, h in hours.items() if s <= step), default=0.0)))
    return sorted(out)


def _load_cache(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {row["checkpoint"]: row for row in rows}


def _append(path: Path, row: dict) -> None:
    with open(path, "a") as f:  # one line per snapshot: a killed scorer loses at most the one in progress
        f.write(json.dumps(row) + "\n")
        f.flush()


def score_pending(runs: list[Path], starts_named: dict[str, Path], root: Path, args, cache: dict,
                  last: bool = True) -> int:
    """Score every wanted snapshot not in the cache (every ``--every`` steps, and with ``last`` each run's
    latest); returns how many were scored."""
    todo = [(name, 0, path, 0.0) for name, path in starts_named.items()]
    for run in runs:
        snaps = snapshots(run)
        for i, (step, folder, hours) in enumerate(snaps):
            if step % args.every == 0 or (last and i == len(snaps) - 1):
                todo.append((run.name, step, folder, hours))
    done = 0
    for name, step, folder, hours in todo:
        key = str(folder.resolve())
        if key in cache:
            continue
        began = time.perf_counter()
        row = {"run": name, "step": step, "hours": hours, "checkpoint": key,
               **score(folder, root, args.starts, args.n_future), "score_s": None}
        row["score_s"] = round(time.perf_counter() - began, 1)
        cache[key] = row
        _append(args.cache, row)
        print(f"[curves] {name} step {step}: " + ", ".join(f"{k} {_fmt(row[k])}" for k in COLUMNS), flush=True)
        done += 1
    return done


def _fmt(value) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def table(rows: list[dict], starts_named: dict[str, Path]) -> str:
    """Markdown: one row per (run, step), the start checkpoints first."""
    head = "| run | step | hours | " + " | ".join(COLUMNS) + " |"
    lines = [head, "|" + "---|" * (3 + len(COLUMNS))]
    order = sorted(rows, key=lambda r: (r["run"] not in starts_named, r["run"], r["step"]))
    for r in order:
        lines.append(f"| {r['run']} | {r['step']} | {r['hours']:.2f} | " + " | ".join(_fmt(r[k]) for k in COLUMNS) + " |")
    return "\n".join(lines)


#: Release 4's targets (issue 29), drawn as dashed lines.
TARGETS = {"arrived_recall_1step": 0.7, "arrived_recall_free": 0.5, "arm_psnr_push": 20.0, "objects_margin_push": 2.0,
           "random_ssim_margin_min": 0.0, "replay_psnr": 28.0, "replay_ssim": 0.92}


def plot(rows: list[dict], runs: list[str], starts_named: dict[str, Path], out: Path) -> None:
    """One panel per column against hours of training (steps on the top axis when one run is drawn); each
    run's curve begins at the start checkpoints' scores; targets dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(2, math.ceil(len(COLUMNS) / 2), figsize=(3.2 * math.ceil(len(COLUMNS) / 2), 7))
    base = [r for r in rows if r["run"] in starts_named]
    for ax, col in zip(axes.flat, COLUMNS):
        for run in runs:
            pts = sorted(base + [r for r in rows if r["run"] == run], key=lambda r: r["hours"])
            ax.plot([r["hours"] for r in pts], [math.nan if r.get(col) is None else r[col] for r in pts], "o-",
                    label=run, markersize=3)
        if col in TARGETS:
            ax.axhline(TARGETS[col], color="k", linestyle="--", linewidth=0.8, label="target")
        if len(runs) == 1:  # one run: its steps on the top axis
            own = sorted({(r["hours"], r["step"]) for r in base + [r for r in rows if r["run"] == runs[0]]})
            if len(own) > 1:
                h, st = np.array(own, dtype=float).T
                ax.secondary_xaxis("top", functions=(lambda x, h=h, st=st: np.interp(x, h, st),
                                                     lambda x, h=h, st=st: np.interp(x, st, h))).set_xlabel("step")
        ax.set_title(col, fontsize=9)
        ax.set_xlabel("hours of training")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders (with snapshots/)")
    p.add_argument("--start", action="append", default=[], help="NAME=CHECKPOINT scored as step 0 of every run")
    p.add_argument("--starts", type=int, default=16, help="validate sequences scored (default 16)")
    p.add_argument("--n-future", type=int, default=28, help="predicted frames (default 28, an env episode)")
    p.add_argument("--data-root", type=Path, default=None, help="a synthetic dataset with a validate split "
                   "(default: the embedded data)")
    p.add_argument("--every", type=int, default=200, help="score snapshots whose step is a multiple of this "
                   "(and each run's last; default 200)")
    p.add_argument("--watch", type=float, default=0.0, help="keep scoring new snapshots for this many minutes")
    p.add_argument("--cache", type=Path, default=Path("curves.jsonl"), help="scores so far, one JSON line each")
    p.add_argument("--plot", type=Path, default=None, help="write the curves as a PNG")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from bair_world.data.default_data import default_data_root

    root = Path(default_data_root(args.data_root, split="validate"))
    starts_named = dict(item.split("=", 1) for item in args.start)
    starts_named = {k: Path(v) for k, v in starts_named.items()}
    cache = _load_cache(args.cache)
    deadline = time.monotonic() + args.watch * 60.0
    while time.monotonic() < deadline:  # while runs train: only every --every steps (the latest moves on)
        if not score_pending(args.runs, starts_named, root, args, cache, last=False):
            time.sleep(60)
    score_pending(args.runs, starts_named, root, args, cache)
    wanted = {r.name for r in args.runs} | set(starts_named)
    rows = [r for r in cache.values() if r["run"] in wanted]
    print(table(rows, starts_named))
    if args.plot is not None:
        plot(rows, [r.name for r in args.runs], starts_named, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
