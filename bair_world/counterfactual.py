"""Counterfactual evaluation: the learned model and the true pushing world driven by the same NEW actions.

Each start is a synthetic reference (a held-out dataset sequence or a built-in rollout) whose seed is
known: the true world is rebuilt from it and replayed to the last context frame, checked byte for
byte against the reference's frames (`bair_world.sim.start_world`). From that same start the model
(`WorldModel`, one batched call per step for all rows) and the true world execute the same actions,
the model getting cond_t = concat(action_t, position_t) in raw units with the position the true world
is at. Action sources (`SOURCES`):

- ``recorded``: the reference's own actions (replay, scored against the true world as driven);
- ``random``: uniform over the world's executable box (`bair_world.sim.action_bounds`; whole-number
  columns 2-3), a new row every second step as in the data;
- ``push``: a scripted push through the nearest objects (`bair_world.sim.policy.NearestPusher`).

Scores per step against the TRUE world's frames, beside the copy-last-frame baseline: PSNR, SSIM,
arm and object PSNR (regions of the true labels, `bair_world.regions.region_masks`), object PSNR
pooled over pixels, and over the pixels objects *arrived* at (object now, table in the last context
frame) / *vacated* (object then, table now; `regions.moved_masks`, arm pixels left out): pooled PSNR
and recall (the prediction is closer, L2 in RGB, to the true frame than to the last context frame).
**Action sensitivity** needs no seeds (real BAIR too): replay PSNR against the recorded frames with
the right actions minus with another sequence's (sequence i gets sequence i+1's conds, cyclically).

    report = counterfactual.evaluate("runs/x/best", data_root, split="test", count=16)
    report["sources"]["push"]["table"]["arrived_recall"]   # {"model": ..., "copy_last": ...}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch

from bair_world import metrics, regions
from bair_world.counterfactual_data import Starts, load_starts, world_model
from bair_world.data.batch import cond_of, frames_to_float, frames_to_uint8
from bair_world.seeding import latent_generators
from bair_world.sim import SimConfig, action_bounds, start_world
from bair_world.sim.config import GRIP_COLUMN, Z_COLUMN
from bair_world.sim.policy import NearestPusher

SOURCES = ("recorded", "random", "push")
#: Per-frame metrics (mean over frames of per-frame scores) and pooled ones (over all masked pixels).
FRAME_METRICS = ("psnr", "ssim", "arm_psnr", "objects_psnr")
POOLED_METRICS = ("objects_psnr_pooled", "arrived_psnr", "vacated_psnr", "arrived_recall", "vacated_recall")


@dataclass(frozen=True)
class CounterfactualConfig:
    """What `evaluate` runs."""

    sources: tuple[str, ...] = SOURCES
    """Action sources to drive both worlds with (see `SOURCES`); () for action sensitivity only."""
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
        unknown = [s for s in self.sources if s not in SOURCES]
        if unknown:
            raise ValueError(f"unknown action source(s) {unknown}; choose from {list(SOURCES)}")
        for name in ("count", "n_future", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")


def _held(t: int, prev: np.ndarray, fresh) -> np.ndarray:
    """The data's rule: a new action row at even t, held at odd t."""
    return fresh() if t % 2 == 0 else prev


class _Actions:
    """The action rows (B, 4) float32 of one source for the rows of a batch, step by step."""

    def __init__(self, source: str, starts: Starts, rows: np.ndarray, seed: int, config: SimConfig):
        self.source, self.starts, self.rows, self.config = source, starts, rows, config
        self.rngs = [np.random.default_rng([0xAC7, seed, int(starts.indices[r])]) for r in rows]
        self.pushers = [NearestPusher(config) for _ in rows]
        self.prev: np.ndarray | None = None

    def _random(self) -> np.ndarray:
        low, high = action_bounds(self.config)
        out = np.stack([rng.uniform(low, high) for rng in self.rngs])  # (B, 4)
        out[:, [GRIP_COLUMN, Z_COLUMN]] = np.stack([rng.integers(0, high[[GRIP_COLUMN, Z_COLUMN]].astype(int) + 1)
                                                    for rng in self.rngs])
        return out

    def _push(self, worlds) -> np.ndarray:
        return np.stack([p.act(w.position, w.object_poses, w.radii) for p, w in zip(self.pushers, worlds)])

    def __call__(self, t: int, worlds) -> np.ndarray:
        recorded = self.starts.actions[self.rows, t]  # (B, 4)
        if self.source == "recorded":
            return recorded.astype(np.float32)
        prev = self.prev if self.prev is not None else self.starts.actions[self.rows, t - 1] if t > 0 else recorded
        fresh = self._random if self.source == "random" else lambda: self._push(worlds)
        self.prev = _held(t, prev, fresh).astype(np.float32)
        return self.prev


@torch.no_grad()
def drive(wm, starts: Starts, rows, source: str, n_past: int, n_future: int, seed: int = 0,
          config: SimConfig = SimConfig()) -> dict[str, Any]:
    """Run ``source``'s actions from the starts ``rows`` in the true world and the model.

    Returns:
        {"pred": (B, S, 3, 64, 64) float model frames, "true": uint8 (B, S, 64, 64, 3) true-world frames,
        "labels": uint8 (B, S, 64, 64) their labels, "context_labels": uint8 (B, 64, 64) of the last
        context frame, "conds": float32 (B, S, 7) what both worlds executed}.
    """
    rows = np.asarray(rows)
    worlds = [start_world(starts.seed(r), starts.frames[r], n_past, config, name=starts.name(r)) for r in rows]
    context = frames_to_float(starts.frames[rows, :n_past])  # (B, n_past, 3, 64, 64)
    gens = latent_generators(seed, [int(starts.indices[r]) for r in rows], 0)
    wm.reset(context, torch.from_numpy(starts.conds[rows, :n_past - 1]), gens)
    actions = _Actions(source, starts, rows, seed, config)
    b, s_len = len(rows), n_future
    out = {"pred": [], "true": np.empty((b, s_len, 64, 64, 3), np.uint8), "labels": np.empty((b, s_len, 64, 64), np.uint8),
           "context_labels": np.stack([w.labels() for w in worlds]), "conds": np.empty((b, s_len, 7), np.float32)}
    for s in range(s_len):
        t = n_past - 1 + s
        act = actions(t, worlds)  # (B, 4) float32
        pos = np.stack([w.position for w in worlds])  # (B, 3) float64: where the true world is
        cond = cond_of(act, pos)  # (B, 7)
        out["pred"].append(wm.step(torch.from_numpy(cond), gens).float().cpu())
        for i, w in enumerate(worlds):
            out["true"][i, s] = w.step(act[i].astype(np.float64), pos[i])
            out["labels"][i, s] = w.labels()
        out["conds"][:, s] = cond
    out["pred"] = torch.stack(out["pred"], dim=1)  # S x (B, 3, 64, 64) -> (B, S, 3, 64, 64)
    return out


def score(pred: torch.Tensor, true: torch.Tensor, labels: torch.Tensor, context: torch.Tensor,
          context_labels: torch.Tensor, frames: metrics.StepCurves, pooled: regions.PooledCurves) -> None:
    """Add one batch's scores to ``frames`` (per-frame metrics) and ``pooled`` (pooled metrics).

    Args:
        pred: (B, S, 3, H, W) predictions in [0, 1]; true: (B, S, 3, H, W) true frames.
        labels: (B, S, H, W) uint8 true labels; context: (B, 3, H, W) last context frame;
        context_labels: (B, H, W) its labels.
    """
    frames.update("psnr", metrics.psnr(pred, true))
    frames.update("ssim", metrics.ssim(pred, true))
    masks = regions.region_masks(torch.cat([context_labels[:, None], labels], 1), 1)  # each (B, S, H, W)
    for region in ("arm", "objects"):
        frames.update(f"{region}_psnr", metrics.region_psnr(pred, true, masks[region]))
    pooled.update("objects_psnr_pooled", *regions.masked_sse(pred, true, masks["objects"]))
    ref = context[:, None].expand_as(true)  # (B, S, 3, H, W)
    for name, mask in regions.moved_masks(labels, context_labels).items():
        pooled.update(f"{name}_psnr", *regions.masked_sse(pred, true, mask))
        pooled.update(f"{name}_recall", *regions.closer_counts(pred, true, ref, mask), kind="ratio")


def _table(model: dict, base: dict) -> dict[str, dict[str, float | None]]:
    """{metric: {"model", "copy_last"}} of the means, plus the last step's PSNR and SSIM."""
    table = {k: {"model": model[k]["mean"], "copy_last": base[k]["mean"]} for k in model}
    for k in ("psnr", "ssim"):
        table[f"last_step_{k}"] = {"model": model[k]["per_step"][-1], "copy_last": base[k]["per_step"][-1]}
    return table


def _batches(n: int, size: int):
    return [np.arange(i, min(i + size, n)) for i in range(0, n, size)]


def evaluate_source(wm, starts: Starts, source: str, n_past: int, cfg: CounterfactualConfig) -> dict[str, Any]:
    """{"model", "copy_last": {metric: {"mean", "per_step"}}, "table": {metric: {"model", "copy_last"}}}."""
    curves = {"model": (metrics.StepCurves(), regions.PooledCurves()),
              "copy_last": (metrics.StepCurves(), regions.PooledCurves())}
    for rows in _batches(len(starts), cfg.batch_size):
        run = drive(wm, starts, rows, source, n_past, cfg.n_future, cfg.seed)
        true, context = frames_to_float(run["true"]), frames_to_float(starts.frames[rows, n_past - 1])
        labels, ctx_labels = torch.from_numpy(run["labels"]), torch.from_numpy(run["context_labels"])
        for name, pred in (("model", run["pred"]), ("copy_last", context[:, None].expand_as(true))):
            score(pred, true, labels, context, ctx_labels, *curves[name])
    out = {name: {**metrics.summarise(f), **p.summary()} for name, (f, p) in curves.items()}
    out["table"] = _table(out["model"], out["copy_last"])
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


def evaluate(model, references, split: str = "test", sources: Sequence[str] = SOURCES, count: int | None = 32,
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
        {"protocol": {...}, "sources": {source: {"model", "copy_last", "table"}},
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


__all__ = ["SOURCES", "CounterfactualConfig", "Starts", "evaluate", "rollout", "drive", "score", "load_starts",
           "sensitivity_scores", "action_sensitivity", "evaluate_source"]
