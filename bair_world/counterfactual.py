"""Counterfactual evaluation: the learned model and the true pushing world driven by the same NEW actions.

Each start is a synthetic reference (a held-out dataset sequence or a built-in rollout) whose seed is
known: the true world is rebuilt from it and replayed to the last context frame, checked byte for
byte against the reference's frames (`bair_world.sim.start_world`). From that same start the model
(`WorldModel`, one batched call per step for all rows) and the true world execute the same actions,
the model getting cond_t = concat(action_t, position_t) in raw units with the position the true world
is at. The action sources are one registry, `bair_world.counterfactual_sources.SOURCES`:
``recorded``, the reference's own actions, and every concrete data policy of `bair_world.sim.policy`,
e.g. ``random`` uniform over the executable box, ``push`` through the nearest objects, ``sweep`` in a
straight line through the objects' area. A reference made by any data policy starts the true world
(its dataset records the policy).

Scores per step against the TRUE world's frames, beside the copy-last-frame baseline: PSNR, SSIM,
arm and object PSNR (regions of the true labels, `bair_world.regions.region_masks`), object PSNR
pooled over pixels, and over the pixels objects *arrived* at (object now, table in the last context
frame) / *vacated* (object then, table now; `regions.moved_masks`, arm pixels left out): pooled PSNR
and recall (the prediction is closer, L2 in RGB, to the true frame than to the last context frame).
The model runs free (``model``: fed its own predictions) and ``one_step`` (fed the true world's
previous frame at every step, latents seeded alike); both are scored, each with its motion
diagnostics (`bair_world.motion_diagnostics`: branch weights and flow against the true one per region).

**Action sensitivity** needs no seeds (real BAIR too): replay PSNR against the recorded frames with
the right actions minus with another sequence's (sequence i gets sequence i+1's conds, cyclically).

    report = counterfactual.evaluate("runs/x/best", data_root, split="test", count=16)
    report["sources"]["push"]["table"]["arrived_recall"]   # {"model": ..., "one_step": ..., "copy_last": ...}
    report["sources"]["push"]["motion"]["one_step"]["moving"]["warp"]["mean"]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch

from bair_world import metrics, regions
from bair_world.counterfactual_data import Starts, load_starts, world_model
from bair_world.counterfactual_drive import drive
from bair_world.counterfactual_sources import DEFAULT_SOURCES, SOURCES, check_sources
from bair_world.data.batch import frames_to_float, frames_to_uint8
from bair_world.motion_diagnostics import MODES, MotionStats, motion_regions
from bair_world.seeding import latent_generators

#: Per-frame metrics (mean over frames of per-frame scores) and pooled ones (over all masked pixels).
FRAME_METRICS = ("psnr", "ssim", "arm_psnr", "objects_psnr")
POOLED_METRICS = ("objects_psnr_pooled", "arrived_psnr", "vacated_psnr", "arrived_recall", "vacated_recall")
#: What is scored against the true world: the model free running and its baseline (copy the last context
#: frame), the model one-step and its baseline (copy the true previous frame).
COLUMNS = ("model", "copy_last", "one_step", "copy_previous")


@dataclass(frozen=True)
class CounterfactualConfig:
    """What `evaluate` runs."""

    sources: tuple[str, ...] = DEFAULT_SOURCES
    """Action sources to drive both worlds with (of `SOURCES`); () for action sensitivity only."""
    count: int | None = 32
    """Starts: the first N references (None: all)."""
    n_future: int = 28
    """Steps after the context (2 -> 28 = an env episode)."""
    seed: int = 0
    """Seed of the latent samples (`bair_world.seeding.latent_seed`, one prior sample) and random actions."""
    batch_size: int = 32
    """Rows per model call."""
    sensitivity: bool = True
    """Also measure action sensitivity (right actions vs another sequence's, on the recorded frames)."""

    def __post_init__(self):
        check_sources(self.sources)
        for name in ("count", "n_future", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")


def score(pred: torch.Tensor, true: torch.Tensor, labels: torch.Tensor, context: torch.Tensor,
          context_labels: torch.Tensor, frames: metrics.StepCurves, pooled: regions.PooledCurves) -> None:
    """Add one batch's scores to ``frames`` (per-frame metrics) and ``pooled`` (pooled metrics).

    Args:
        pred: (B, S, 3, H, W) predictions in [0, 1]; true: (B, S, 3, H, W) true frames.
        labels: (B, S, H, W) uint8 true labels.
        context: the last true frame the prediction saw, which arrived/vacated and recall are relative
            to: (B, 3, H, W) the last context frame (free running), or (B, S, 3, H, W) the frame before
            each step (one-step); context_labels: its labels, (B, H, W) or (B, S, H, W).
    """
    frames.update("psnr", metrics.psnr(pred, true))
    frames.update("ssim", metrics.ssim(pred, true))
    masks = regions.scored_masks(labels, context_labels)  # each (B, S, H, W)
    for region in ("arm", "objects"):
        frames.update(f"{region}_psnr", metrics.region_psnr(pred, true, masks[region]))
    pooled.update("objects_psnr_pooled", *regions.masked_sse(pred, true, masks["objects"]))
    ref = (context if context.dim() == true.dim() else context[:, None]).expand_as(true)  # (B, S, 3, H, W)
    for name in ("arrived", "vacated"):
        pooled.update(f"{name}_psnr", *regions.masked_sse(pred, true, masks[name]))
        pooled.update(f"{name}_recall", *regions.closer_counts(pred, true, ref, masks[name]), kind="ratio")


def _table(out: dict) -> dict[str, dict[str, float | None]]:
    """{metric: {column: mean}} for `COLUMNS`, plus the last step's PSNR and SSIM."""
    table = {k: {c: out[c][k]["mean"] for c in COLUMNS} for k in out["model"]}
    for k in ("psnr", "ssim"):
        table[f"last_step_{k}"] = {c: out[c][k]["per_step"][-1] for c in COLUMNS}
    return table


def _batches(n: int, size: int):
    return [np.arange(i, min(i + size, n)) for i in range(0, n, size)]


def evaluate_source(wm, starts: Starts, source: str, n_past: int, cfg: CounterfactualConfig) -> dict[str, Any]:
    """{column: {metric: {"mean", "per_step"}}} for `COLUMNS`, "table": {metric: {column: mean}} and
    "motion": {mode: {region: {stat: {"mean", "per_step"} or None}}} (`motion_diagnostics`)."""
    curves = {name: (metrics.StepCurves(), regions.PooledCurves()) for name in COLUMNS}
    motion = {mode: MotionStats() for mode in MODES}
    for rows in _batches(len(starts), cfg.batch_size):
        run = drive(wm, starts, rows, source, n_past, cfg.n_future, cfg.seed, diagnostics=True)
        true, context = frames_to_float(run["true"]), frames_to_float(starts.frames[rows, n_past - 1])
        labels, ctx_labels = torch.from_numpy(run["labels"]), torch.from_numpy(run["context_labels"])
        prev = torch.cat([context[:, None], true[:, :-1]], 1)  # (B, S, 3, H, W): the true frame before each step
        prev_labels = torch.cat([ctx_labels[:, None], labels[:, :-1]], 1)  # (B, S, H, W)
        seen = {"free_running": (context, ctx_labels), "one_step": (prev, prev_labels)}  # each mode's last true frame
        preds = {"model": (run["pred"], "free_running"),
                 "copy_last": (context[:, None].expand_as(true), "free_running"),
                 "one_step": (run["modes"]["one_step"]["pred"], "one_step"), "copy_previous": (prev, "one_step")}
        for name, (pred, mode) in preds.items():
            score(pred, true, labels, *seen[mode], *curves[name])
        for mode, stats in motion.items():
            masks = motion_regions(labels, seen[mode][1], run["true_flow"])
            stats.update(masks, run["modes"][mode]["weights"], run["modes"][mode]["flow"], run["true_flow"])
    out: dict[str, Any] = {name: {**metrics.summarise(f), **p.summary()} for name, (f, p) in curves.items()}
    out["table"] = _table(out)
    out["motion"] = {mode: stats.summary() for mode, stats in motion.items()}
    return out


def sensitivity_scores(right: torch.Tensor, other: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, S) action sensitivity: PSNR of the rollout with the right actions minus with another's."""
    return metrics.psnr(right, target) - metrics.psnr(other, target)


@torch.no_grad()
def action_sensitivity(wm, starts: Starts, n_past: int, cfg: CounterfactualConfig) -> dict[str, Any]:
    """Replay PSNR against the recorded frames with the right conds and with sequence i+1's (cyclic)."""
    if len(starts) < 2:
        raise ValueError("action sensitivity needs at least 2 sequences (one lends the other its actions)")
    frames = frames_to_float(starts.frames[:, : n_past + cfg.n_future])  # (N, T, 3, 64, 64)
    conds = torch.from_numpy(starts.conds)  # (N, T, 7)
    other = conds.clone()
    other[:, n_past - 1:] = conds.roll(-1, dims=0)[:, n_past - 1:]  # the context transitions keep theirs
    curves = metrics.StepCurves()
    for rows in _batches(len(starts), cfg.batch_size):
        gens = [latent_generators(cfg.seed, [int(starts.indices[r]) for r in rows], 0) for _ in range(2)]
        target = frames[rows, n_past:]
        right = wm.rollout(frames[rows], conds[rows], cfg.n_future, gens[0]).float().cpu()
        wrong = wm.rollout(frames[rows], other[rows], cfg.n_future, gens[1]).float().cpu()
        curves.update("psnr_right", metrics.psnr(right, target))
        curves.update("psnr_other", metrics.psnr(wrong, target))
        curves.update("sensitivity_db", sensitivity_scores(right, wrong, target))
    return metrics.summarise(curves)


def evaluate(model, references, split: str = "test", sources: Sequence[str] = DEFAULT_SOURCES, count: int | None = 32,
             seed: int = 0, n_future: int = 28, batch_size: int = 32, sensitivity: bool = True,
             device: str = "cpu", precision: str = "float32") -> dict[str, Any]:
    """Counterfactual scores of a model (see the module docstring).

    Args:
        model: a checkpoint directory, an `SVG` or a `WorldModel`.
        references: a dataset root (folders or packed; synthetic for the sources, any for sensitivity),
            a list of pushing-world seeds, or a reference source (`bair_world.envs.ReferenceSource`).
        split: the dataset split (dataset roots only).
        sources, count, seed, n_future, batch_size, sensitivity: `CounterfactualConfig`'s fields.
        device, precision: where and how the model runs (a checkpoint path or an `SVG`).

    Returns:
        {"protocol": {...}, "sources": {source: {"model", "one_step", "copy_last", "table", "motion"}},
        "sensitivity": {"psnr_right", "psnr_other", "sensitivity_db": {"mean", "per_step"}} (if asked)}.
    """
    cfg = CounterfactualConfig(tuple(sources), count, n_future, seed, batch_size, sensitivity)
    wm, n_past = world_model(model, device, precision)
    starts = load_starts(references, split, cfg.count, n_past + cfg.n_future, need_seeds=bool(cfg.sources))
    report = {"protocol": {**asdict(cfg), "sources": list(cfg.sources), "n_past": n_past, "starts": len(starts),
                           "references": starts.source, "latent": "one prior sample",
                           "truth": "the true pushing world started from each reference, driven by the same actions",
                           "baseline": "copy the last context frame"},
              "sources": {src: evaluate_source(wm, starts, src, n_past, cfg) for src in cfg.sources}}
    if cfg.sensitivity:
        report["sensitivity"] = action_sensitivity(wm, starts, n_past, cfg)
    return report


def rollout(model, references, index: int = 0, source: str = "push", split: str = "test", n_future: int = 28,
            seed: int = 0, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """One counterfactual rollout for a video: (true world uint8 (T, 64, 64, 3), model uint8 (T, 64, 64, 3)),
    T = n_past + n_future, the first n_past frames the reference's context in both."""
    CounterfactualConfig(sources=(source,), n_future=n_future)
    wm, n_past = world_model(model, device, "float32")
    starts = load_starts(references, split, None, n_past + n_future, need_seeds=True, only=index)
    run = drive(wm, starts, [0], source, n_past, n_future, seed)
    context = starts.frames[0, :n_past]
    return (np.concatenate([context, run["true"][0]]), np.concatenate([context, frames_to_uint8(run["pred"][0])]))


__all__ = ["SOURCES", "DEFAULT_SOURCES", "COLUMNS", "CounterfactualConfig", "Starts", "evaluate", "rollout", "drive", "score",
           "load_starts", "sensitivity_scores", "action_sensitivity", "evaluate_source"]
