"""Evaluate a checkpoint: ``bair-world evaluate --checkpoint runs/x/best [options]`` (or ``python training/evaluate.py``).

Two protocols from one rollout per sequence: the env's full episode (2 context frames -> 28
predicted) and, on its first 10 frames, the seed's (2 -> 10). Actions and end-effector positions
given, one latent sample from the prior per sequence, every sequence of the split (no dropped last
batch), PSNR per frame on [0, 1] images averaged over predicted frames and sequences. Beside it:
the seed's per-channel PSNR (``finn_psnr``), SSIM, best-of-N over ``--samples`` draws (per
sequence, the draw with the best mean PSNR over the protocol's frames), per-step curves, a
sharpness ratio per step (mean gradient magnitude of the prediction / the recorded frame), and
always the copy-last-frame baseline on the same sequences. On data from the built-in pushing world
(sequences with ``labels.npz``) also PSNR per region (arm, objects, static scene): region r at
step t is the union of r's pixels in the recorded frames t-1 and t, so an arm that lags or vanishes
is scored where it should be; real BAIR folders have no labels and get no region columns.

Latent noise comes from one generator per (sequence, sample), seeded by `bair_world.seeding.latent_seed`
(seed, sequence index, sample), so results repeat and do not depend on ``--batch-size`` or the
device's batching; ``bair_world.envs.replay_psnr`` uses the same rule, so replaying sequence i's
actions through ``BairWorld-v0`` gives the same PSNR.
Writes ``metrics.json`` and ``psnr_per_step.png`` into ``--out`` (default: ``runs/eval-<name>-<split>``
in the working directory, never inside the checkpoint's or the package's folder) and prints a table.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from bair_world import metrics
from bair_world.cli import script_main
from bair_world.checkpoint import check_n_past_option, default_checkpoint, load_checkpoint
from bair_world.training.configcli import add_dataclass_arguments, apply_overrides, explicit_values
from bair_world.training.eval_report import (JSON_FILE, PLOT_FILE, REGIONS, format_table,  # noqa: F401 (re-exported)
                                             check_writable, plot_png, write_report)
from bair_world.training.eval_counterfactual import counterfactual_request, run_counterfactual
from bair_world.data.open import open_dataset
from bair_world.data.batch import collate
from bair_world.seeding import latent_generators
from bair_world.regions import region_masks
from bair_world.devices import resolve_device
from bair_world.world_model import PRECISIONS, WorldModel

METRICS = ("psnr", "finn_psnr", "ssim")


@dataclass(frozen=True)
class EvalConfig:
    """The evaluation protocol and where to run it."""

    split: str = "test"
    """Split folder of the data root to evaluate on."""
    samples: int = 1
    """Latent draws per sequence; the first is the one-sample protocol, all N give best-of-N."""
    n_future: int = 28
    """Frames predicted after the context: the full protocol (28 = an env episode; n_past + n_future
    <= the sequences' length, 30 in BAIR)."""
    short_n_future: int = 10
    """Also report the first N predicted frames as a protocol of its own (10 = the seed's); 0 = off."""
    batch_size: int = 32
    """Sequences per model call (results do not depend on it)."""
    device: str = "auto"
    """auto (CUDA if available), cpu or cuda."""
    precision: Literal["float32", "bfloat16", "float16"] = "float32"
    """Model compute dtype: float32 (exact), bfloat16 (CPU/CUDA) or float16 (CUDA): faster, PSNR nearly
    unchanged (docs/benchmarks.md, "Model step: precision and compilation")."""
    seed: int = 0
    """Seed of the latent samples."""
    max_sequences: Optional[int] = None
    """Evaluate only the first N sequences of the split (None: all, as the protocol says)."""
    progress: bool = True
    """Show a tqdm progress bar."""
    actions: str = ""
    """Counterfactual evaluation (bair_world.counterfactual), comma-separated action sources
    (bair_world.counterfactual_sources.SOURCES: recorded or a data policy such as random, push, sweep)
    drive the model and the true pushing world (rebuilt from each sequence's recorded seed: synthetic
    data) with the same actions; any of them also measures action sensitivity, which alone
    ("sensitivity") works on real BAIR too. On the evaluated sequences, one prior sample."""

    def __post_init__(self):
        for name in ("samples", "n_future", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.short_n_future < 0:
            raise ValueError(f"short_n_future must be >= 0, got {self.short_n_future}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}")
        if self.max_sequences is not None and self.max_sequences < 1:
            raise ValueError(f"max_sequences must be >= 1 or None, got {self.max_sequences}")
        counterfactual_request(self.actions)  # a ValueError naming the bad source

    @property
    def horizons(self) -> list[int]:
        """The protocols' predicted lengths, shortest first (a short one past n_future is dropped)."""
        return sorted({self.n_future} | ({self.short_n_future} if 0 < self.short_n_future < self.n_future else set()))


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
        **options: `EvalConfig` fields (split, samples, n_future, batch_size, device, seed,
            max_sequences, progress). The context is the checkpoint's ``n_past`` frames.

    Returns:
        The report written to metrics.json: ``model`` / ``best_of_n`` / ``baseline`` each map
        ``psnr``, ``finn_psnr``, ``ssim``, ``sharpness`` (and with labels ``moving_sharpness``,
        ``arm_psnr``, ``objects_psnr``, ``static_psnr``) to ``{"mean", "per_step"}`` over the full
        horizon; ``protocols`` maps each horizon ("10", "28") to its summary row; plus
        ``protocol``, ``checkpoint``, ``data``, ``per_sequence_psnr`` and timing; with ``actions``,
        ``counterfactual`` (`bair_world.counterfactual.evaluate`'s report).
    """
    cfg = EvalConfig(**options)
    device = resolve_device(cfg.device)
    model, info = load_checkpoint(checkpoint, device)  # before any data is read or generated
    n_past = model.cfg.n_past
    from bair_world.data.default_data import default_data_root

    data_root = default_data_root(data_root, cfg.split)
    t_len = n_past + cfg.n_future
    dataset = open_dataset(data_root, cfg.split, seq_len=t_len)
    n_seq = len(dataset) if cfg.max_sequences is None else min(cfg.max_sequences, len(dataset))
    counterfactual_request(cfg.actions, data_root, cfg.split, n_seq)  # seeds exist, before any work
    subset = torch.utils.data.Subset(dataset, range(n_seq))
    loader = DataLoader(subset, batch_size=cfg.batch_size, shuffle=False, drop_last=False, collate_fn=collate)
    world = WorldModel(model, device, cfg.precision)
    acc = _Accumulators(cfg.horizons)
    start, seen = time.perf_counter(), 0
    from tqdm import tqdm

    bar = tqdm(total=n_seq, desc="evaluate", unit="seq", leave=False, disable=not cfg.progress)
    for batch in _closing(loader, bar):
        b = len(batch)
        frames = batch.frames.to(device)  # (B, T, 3, 64, 64)
        conds = batch.cond.to(device)  # (B, T, 7)
        target = frames[:, n_past:]  # (B, S, 3, 64, 64)
        preds = []
        for s in range(cfg.samples):
            gens = latent_generators(cfg.seed, range(seen, seen + b), s)  # the env's rule too
            preds.append(world.rollout(frames, conds, cfg.n_future, gens))  # (B, S, 3, 64, 64)
        labels = [dataset.labels(i) for i in range(seen, seen + b)]
        masks = (region_masks(torch.from_numpy(np.stack(labels)).to(device), n_past)
                 if all(x is not None for x in labels) else None)
        acc.add(preds, target, metrics.copy_last_frame(frames, n_past), masks)
        seen += b
        bar.update(b)
    elapsed = time.perf_counter() - start
    extra = run_counterfactual(world, data_root, cfg, n_seq)  # {} without --actions
    return {
        "checkpoint": {"path": str(Path(checkpoint).resolve()), "step": info.get("step"), "epoch": info.get("epoch"),
                       "model": info.get("model")},
        "data": {"root": str(Path(data_root).resolve()), "split": cfg.split, "sequences": n_seq,
                 "sequences_in_split": len(dataset)},
        "protocol": _protocol(cfg, n_past),
        **acc.report(cfg.n_future),
        "device": str(device),
        "precision": cfg.precision,
        "seconds": elapsed,
        "sequences_per_second": n_seq * cfg.samples / elapsed if elapsed > 0 else None,
        **extra,
    }


def _protocol(cfg: EvalConfig, n_past: int) -> dict[str, Any]:
    """The report's ``protocol``: the settings and what each score means, for someone reading metrics.json."""
    return {"n_past": n_past, "n_future": cfg.n_future, "samples": cfg.samples, "seed": cfg.seed,
            "latent": "prior", "conditioning": "actions + end-effector positions",
            "psnr": f"per frame on [0, 1], data range 1, predictions clipped, capped at {metrics.PSNR_CAP_DB} dB",
            "best_of_n": "per sequence, the draw with the best mean PSNR over the protocol's frames",
            "baseline": "copy the last context frame",
            "regions": "union of the region's pixels in recorded frames t-1 and t (labels.npz)",
            "sharpness": "mean gradient magnitude, prediction / recorded, per step"}


class _Accumulators:
    """Per-step score curves of the model's draws and the baseline, for each protocol horizon."""

    def __init__(self, horizons: list[int]):
        self.horizons = horizons
        self.model, self.baseline = metrics.StepCurves(), metrics.StepCurves()
        self.best = {h: metrics.StepCurves() for h in horizons}
        self.per_seq = {"model": [], "baseline": []}

    def add(self, preds: list[torch.Tensor], target: torch.Tensor, base: torch.Tensor,
            masks: dict[str, torch.Tensor] | None) -> None:
        """Score draws (each (B, S, 3, 64, 64)) and the baseline's frames against ``target``."""
        draws = [_scores(p, target) for p in preds]
        base_scores = _scores(base, target)
        for name in METRICS:
            self.model.update(name, draws[0][name])
            self.baseline.update(name, base_scores[name])
        truth = metrics.sharpness(target)  # (B, S)
        self.model.update("sharpness", metrics.sharpness(preds[0]) / truth)
        self.baseline.update("sharpness", metrics.sharpness(base) / truth)
        if masks is not None:
            moving = masks["arm"] | masks["objects"]
            truth_moving = metrics.sharpness(target, moving)
            self.model.update("moving_sharpness", metrics.sharpness(preds[0], moving) / truth_moving)
            self.baseline.update("moving_sharpness", metrics.sharpness(base, moving) / truth_moving)
            for region, mask in masks.items():
                self.model.update(f"{region}_psnr", metrics.region_psnr(preds[0], target, mask))
                self.baseline.update(f"{region}_psnr", metrics.region_psnr(base, target, mask))
        stacked = {k: torch.stack([d[k] for d in draws]) for k in METRICS}  # each (N, B, S)
        rows = torch.arange(target.shape[0], device=target.device)
        for h, curves in self.best.items():
            best = stacked["psnr"][..., :h].mean(-1).argmax(0)  # (B,) the draw with the best mean PSNR
            for name in METRICS:
                curves.update(name, stacked[name][best, rows, :h])  # (B, h)
        self.per_seq["model"] += draws[0]["psnr"].mean(-1).tolist()
        self.per_seq["baseline"] += base_scores["psnr"].mean(-1).tolist()

    def report(self, n_future: int) -> dict[str, Any]:
        """Full-horizon curves (``model``, ``best_of_n``, ``baseline``) and a summary per protocol."""
        model, baseline = metrics.summarise(self.model), metrics.summarise(self.baseline)
        protocols = {}
        for h in self.horizons:
            head = lambda c, name: float(np.nanmean(c.curve(name)[:h]))  # noqa: E731
            row = {"n_future": h, "psnr": head(self.model, "psnr"), "ssim": head(self.model, "ssim"),
                   "best_of_n_psnr": self.best[h].mean("psnr"), "baseline_psnr": head(self.baseline, "psnr"),
                   "baseline_ssim": head(self.baseline, "ssim"), "sharpness": head(self.model, "sharpness"),
                   "last_step_psnr": float(self.model.curve("psnr")[h - 1])}
            if "moving_sharpness" in self.model.names:
                row["moving_sharpness"] = head(self.model, "moving_sharpness")
            for region in REGIONS:
                if f"{region}_psnr" in self.model.names:
                    row[f"{region}_psnr"] = head(self.model, f"{region}_psnr")
                    row[f"baseline_{region}_psnr"] = head(self.baseline, f"{region}_psnr")
                    row[f"{region}_psnr_last_step"] = float(self.model.curve(f"{region}_psnr")[h - 1])
            protocols[f"{h}"] = row
        return {"model": model, "best_of_n": metrics.summarise(self.best[n_future]), "baseline": baseline,
                "protocols": protocols, "per_sequence_psnr": self.per_seq}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """The evaluate command line: paths, then every `EvalConfig` field."""
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint directory (default: the bundled model, bair_world/checkpoints/default)")
    parser.add_argument("--data-root", "--data_root", type=Path, default=None,
                        help="BAIR-format folder root (default: the embedded synthetic dataset)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for metrics.json and the plot (default: runs/eval-<name>-<split> in the "
                             "working directory; <name> is the checkpoint's, prefixed by its run's)")
    add_dataclass_arguments(parser, EvalConfig, title="protocol options")
    parser.add_argument("--n-past", "--n_past", type=int, default=None,
                        help="context frames: accepted for the seed's compatibility; must equal the checkpoint's n_past")


def default_out(checkpoint: Path, split: str) -> Path:
    """``runs/eval-<name>-<split>`` in the working directory: ``eval-x-best-test`` for ``runs/x/best``
    (a checkpoint inside a train.py run folder), ``eval-default-test`` for the bundled model."""
    checkpoint = checkpoint.resolve()
    name = checkpoint.name
    if (checkpoint.parent / "train_config.json").is_file():
        name = f"{checkpoint.parent.name}-{name}"
    return Path("runs") / f"eval-{name}-{split}"


def run(args: argparse.Namespace) -> int:
    """Evaluate, write the report into ``args.out`` (its default filled in) and print the table.

    A read-only ``--out`` and a wrong ``--n-past`` are refused before the evaluation, not after it.
    """
    args.checkpoint = args.checkpoint or default_checkpoint()
    cfg = apply_overrides(EvalConfig(), explicit_values(args, EvalConfig))
    args.out = args.out or default_out(args.checkpoint, cfg.split)
    check_writable(args.out)
    check_n_past_option(args.checkpoint, args.n_past)
    report = evaluate(args.checkpoint, args.data_root, **asdict(cfg))
    write_report(report, args.out)  # a full disk: nothing of this report is left
    print(format_table(report))
    print(f"wrote {args.out / JSON_FILE} and {args.out / PLOT_FILE}")
    return 0


def main(argv: list[str] | None = None, prog: str = "evaluate.py") -> int:
    """``python training/evaluate.py``: the ``bair-world evaluate`` command; returns the exit status."""
    return script_main("bair_world.training.evaluate", argv, prog)


if __name__ == "__main__":
    sys.exit(main())
