"""Evaluate a checkpoint: ``python training/evaluate.py --checkpoint runs/x/best [options]``.

The seed's protocol by default: 2 context frames, 10 predicted, actions and end-effector positions
given, one latent sample from the prior per sequence, every sequence of the split (no dropped last
batch), PSNR per frame on [0, 1] images averaged over predicted frames and sequences. Beside it:
the seed's per-channel PSNR (``finn_psnr``), SSIM, best-of-N over ``--samples`` draws (per
sequence, the draw with the best mean PSNR; its PSNR, finn PSNR and SSIM are reported), per-step
curves, and always the copy-last-frame baseline on the same sequences.

Latent noise comes from one generator per (sequence, sample), seeded by `bair_world.seeding.latent_seed`
(seed, sequence index, sample), so results repeat and do not depend on ``--batch-size`` or the
device's batching; ``bair_world.envs.replay_psnr`` uses the same rule, so replaying sequence i's
actions through ``BairWorld-v0`` gives the same PSNR.
Writes ``metrics.json`` and ``psnr_per_step.png`` into ``--out`` (default: ``runs/eval-<name>-<split>``
in the working directory, never inside the checkpoint's or the package's folder) and prints a table.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    sys.path.pop(0)  # run as a script: training/*.py must only be imported as bair_world.training.*

import argparse
import io
import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from bair_world import metrics
from bair_world.checkpoint import load_checkpoint
from bair_world.configcli import add_dataclass_arguments, apply_overrides, explicit_values
from bair_world.data import DataError
from bair_world.data.packed import open_dataset
from bair_world.data.batch import collate
from bair_world.seeding import latent_generators
from bair_world.training.distributed import resolve_device
from bair_world.training.reporting import atomic_write_bytes
from bair_world.world_model import PRECISIONS, WorldModel

METRICS = ("psnr", "finn_psnr", "ssim")
JSON_FILE, PLOT_FILE = "metrics.json", "psnr_per_step.png"


@dataclass(frozen=True)
class EvalConfig:
    """The evaluation protocol and where to run it."""

    split: str = "test"
    """Split folder of the data root to evaluate on."""
    samples: int = 1
    """Latent draws per sequence; the first is the one-sample protocol, all N give best-of-N."""
    n_past: int = 2
    """Context frames fed to the model (ground truth, posterior latents)."""
    n_future: int = 10
    """Frames predicted after the context (n_past + n_future <= the sequences' length, 30 in BAIR)."""
    batch_size: int = 32
    """Sequences per model call (results do not depend on it)."""
    device: str = "auto"
    """auto (CUDA if available), cpu or cuda."""
    precision: Literal["float32", "bfloat16", "float16"] = "float32"
    """Model compute dtype: float32 (exact), bfloat16 (CPU/CUDA) or float16 (CUDA); faster, PSNR within ~0.01 dB."""
    seed: int = 0
    """Seed of the latent samples."""
    max_sequences: Optional[int] = None
    """Evaluate only the first N sequences of the split (None: all, as the protocol says)."""
    progress: bool = True
    """Show a tqdm progress bar."""

    def __post_init__(self):
        for name in ("samples", "n_past", "n_future", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}")
        if self.max_sequences is not None and self.max_sequences < 1:
            raise ValueError(f"max_sequences must be >= 1 or None, got {self.max_sequences}")


def _scores(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """{metric: (B, S)} for predictions and targets (B, S, 3, 64, 64)."""
    return {"psnr": metrics.psnr(pred, target), "finn_psnr": metrics.finn_psnr(pred, target),
            "ssim": metrics.ssim(pred, target)}


def _closing(iterable, bar):
    """Iterate, closing the progress bar however the loop ends (an error must not leave it drawn)."""
    try:
        yield from iterable
    finally:
        bar.close()


@torch.no_grad()
def evaluate(checkpoint: str | Path, data_root: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Score a checkpoint on a BAIR-format split; see the module docstring for the protocol.

    Args:
        checkpoint: checkpoint directory.
        data_root: BAIR folder root; None uses the embedded synthetic dataset.
        **options: `EvalConfig` fields (split, samples, n_past, n_future, batch_size, device, seed,
            max_sequences, progress).

    Returns:
        The report written to metrics.json: ``model`` / ``best_of_n`` / ``baseline`` each map
        ``psnr``, ``finn_psnr``, ``ssim`` to ``{"mean", "per_step"}``; plus ``protocol``,
        ``checkpoint``, ``data``, ``per_sequence_psnr`` and timing.
    """
    cfg = EvalConfig(**options)
    if data_root is None:
        from bair_world.data.synthetic import default_dataset_root

        data_root = default_dataset_root()
    device = resolve_device(cfg.device)
    model, info = load_checkpoint(checkpoint, device)
    if cfg.n_past != model.cfg.n_past:
        warnings.warn(f"{checkpoint}: evaluating with n_past={cfg.n_past}, the model was built for "
                      f"n_past={model.cfg.n_past}")
    t_len = cfg.n_past + cfg.n_future
    dataset = open_dataset(data_root, cfg.split, seq_len=t_len)
    n_seq = len(dataset) if cfg.max_sequences is None else min(cfg.max_sequences, len(dataset))
    subset = torch.utils.data.Subset(dataset, range(n_seq))
    loader = DataLoader(subset, batch_size=cfg.batch_size, shuffle=False, drop_last=False, collate_fn=collate)
    world = WorldModel(model, device, cfg.precision)
    model_c, best_c, base_c = metrics.StepCurves(), metrics.StepCurves(), metrics.StepCurves()
    per_seq_model, per_seq_base = [], []
    start, seen = time.perf_counter(), 0
    from tqdm import tqdm

    bar = tqdm(total=n_seq, desc="evaluate", unit="seq", leave=False, disable=not cfg.progress)
    for batch in _closing(loader, bar):
        b = len(batch)
        frames = batch.frames.to(device)  # (B, T, 3, 64, 64)
        conds = batch.cond.to(device)  # (B, T, 7)
        target = frames[:, cfg.n_past:]  # (B, S, 3, 64, 64)
        draws = []
        for s in range(cfg.samples):
            gens = latent_generators(cfg.seed, range(seen, seen + b), s)  # the env's rule too
            pred = world.rollout(frames, conds, cfg.n_past, cfg.n_future, gens)  # (B, S, 3, 64, 64)
            draws.append(_scores(pred, target))
        for name in METRICS:
            model_c.update(name, draws[0][name])
        stacked = {k: torch.stack([d[k] for d in draws]) for k in METRICS}  # each (N, B, S)
        best = stacked["psnr"].mean(-1).argmax(0)  # (B,) draw with the best mean PSNR per sequence
        rows = torch.arange(b, device=best.device)
        for name in METRICS:
            best_c.update(name, stacked[name][best, rows])  # (B, S)
        base = _scores(metrics.copy_last_frame(frames, cfg.n_past), target)
        for name in METRICS:
            base_c.update(name, base[name])
        per_seq_model += draws[0]["psnr"].mean(-1).tolist()
        per_seq_base += base["psnr"].mean(-1).tolist()
        seen += b
        bar.update(b)
    elapsed = time.perf_counter() - start
    return {
        "checkpoint": {"path": str(Path(checkpoint).resolve()), "step": info.get("step"), "epoch": info.get("epoch"),
                       "model": info.get("model")},
        "data": {"root": str(Path(data_root).resolve()), "split": cfg.split, "sequences": n_seq,
                 "sequences_in_split": len(dataset)},
        "protocol": {"n_past": cfg.n_past, "n_future": cfg.n_future, "samples": cfg.samples, "seed": cfg.seed,
                     "latent": "prior", "conditioning": "actions + end-effector positions",
                     "psnr": f"per frame on [0, 1], data range 1, predictions clipped, capped at {metrics.PSNR_CAP_DB} dB",
                     "best_of_n": "per sequence, the draw with the best mean PSNR",
                     "baseline": "copy the last context frame"},
        "model": metrics.summarise(model_c),
        "best_of_n": metrics.summarise(best_c),
        "baseline": metrics.summarise(base_c),
        "per_sequence_psnr": {"model": per_seq_model, "baseline": per_seq_base},
        "device": str(device),
        "precision": cfg.precision,
        "seconds": elapsed,
        "sequences_per_second": n_seq * cfg.samples / elapsed if elapsed > 0 else None,
    }


def format_table(report: dict[str, Any]) -> str:
    """The report as a text table: means, then PSNR per predicted step."""
    p, d = report["protocol"], report["data"]
    lines = [f"{report['checkpoint']['path']} on {d['root']} [{d['split']}]: {d['sequences']} sequences, "
             f"{p['n_past']} context -> {p['n_future']} predicted, {p['samples']} prior sample(s), seed {p['seed']}",
             f"{'metric':<16}{'model':>10}{'best-of-' + str(p['samples']):>12}{'copy-last':>12}"]
    for name, label in (("psnr", "PSNR (dB)"), ("finn_psnr", "PSNR/ch (dB)"), ("ssim", "SSIM")):
        digits = 4 if name == "ssim" else 2
        lines.append(f"{label:<16}{report['model'][name]['mean']:>10.{digits}f}"
                     f"{report['best_of_n'][name]['mean']:>12.{digits}f}{report['baseline'][name]['mean']:>12.{digits}f}")
    lines.append("PSNR per predicted step (model / copy-last):")
    for i, (m, b) in enumerate(zip(report["model"]["psnr"]["per_step"], report["baseline"]["psnr"]["per_step"])):
        lines.append(f"  t={p['n_past'] + i:<3d}{m:8.2f}{b:8.2f}")
    return "\n".join(lines)


def plot_png(report: dict[str, Any]) -> bytes:
    """PNG bytes of PSNR per predicted step: model, best-of-N (if N > 1) and copy-last."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    p = report["protocol"]
    steps = np.arange(p["n_past"], p["n_past"] + p["n_future"])
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    ax.plot(steps, report["model"]["psnr"]["per_step"], "o-", label="model (1 sample)")
    if p["samples"] > 1:
        ax.plot(steps, report["best_of_n"]["psnr"]["per_step"], "s--", label=f"model (best of {p['samples']})")
    ax.plot(steps, report["baseline"]["psnr"]["per_step"], "x:", color="grey", label="copy last frame")
    ax.set_xlabel("frame index t (predicted)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"{report['data']['split']}: {report['data']['sequences']} sequences")
    ax.grid(alpha=0.3)
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def write_report(report: dict[str, Any], out: str | Path) -> Path:
    """Write metrics.json and psnr_per_step.png into ``out`` (created), each atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / JSON_FILE, json.dumps(report, indent=2).encode())
    atomic_write_bytes(out / PLOT_FILE, plot_png(report))
    return out


def build_parser() -> argparse.ArgumentParser:
    """The evaluate.py command line: paths, then every `EvalConfig` field."""
    parser = argparse.ArgumentParser(prog="evaluate.py", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint directory (default: the bundled model, bair_world/checkpoints/default)")
    parser.add_argument("--data-root", "--data_root", type=Path, default=None,
                        help="BAIR-format folder root (default: the embedded synthetic dataset)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for metrics.json and the plot (default: runs/eval-<name>-<split> in the "
                             "working directory; <name> is the checkpoint's, prefixed by its run's)")
    add_dataclass_arguments(parser, EvalConfig, title="protocol options")
    return parser


def default_out(checkpoint: Path, split: str) -> Path:
    """``runs/eval-<name>-<split>`` in the working directory: ``eval-x-best-test`` for ``runs/x/best``
    (a checkpoint inside a train.py run folder), ``eval-default-test`` for the bundled model."""
    checkpoint = checkpoint.resolve()
    name = checkpoint.name
    if (checkpoint.parent / "train_config.json").is_file():
        name = f"{checkpoint.parent.name}-{name}"
    return Path("runs") / f"eval-{name}-{split}"


def main(argv: list[str] | None = None) -> int:
    from bair_world.training.bundle import default_bundle_dir

    parser = build_parser()
    ns = parser.parse_args(argv)
    ns.checkpoint = ns.checkpoint or default_bundle_dir()
    try:
        cfg = apply_overrides(EvalConfig(), explicit_values(ns, EvalConfig))
    except ValueError as e:
        parser.error(str(e))
    try:
        report = evaluate(ns.checkpoint, ns.data_root, **asdict(cfg))
    except (DataError, ValueError, RuntimeError, ImportError) as e:
        print(f"evaluate.py: error: {e}", file=sys.stderr)
        return 2
    out = ns.out or default_out(ns.checkpoint, cfg.split)
    write_report(report, out)
    print(format_table(report))
    print(f"wrote {out / JSON_FILE} and {out / PLOT_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
