"""One training epoch: the optimiser steps (continuing inside the epoch after a stop), the epoch's
metrics row, validation, ``best/``/``last/`` and the epoch's report; `Run` holds what the epochs share
(built by `bair_world.training.train`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from bair_world.training import data as train_data
from bair_world.training import distributed as D
from bair_world.training.config import TrainConfig
from bair_world.training.loss import teacher_mask
from bair_world.training.reporting import RunReporter, write_sample_gif
from bair_world.training.resume import RunState, restore_partial, rng_states, save_checkpoints
from bair_world.training.schedules import KLAnneal, TeacherForcing
from bair_world.training.signals import StopRequests
from bair_world.training.step import autocast, check_loss, optimizer_step, seed_everything
from bair_world.training.validation import validate

GIF_SEQUENCES = 4


@dataclass
class Run:
    """What the epochs share: the run's data, model, optimiser, loss module, schedules and reporter
    (``reporter`` is None off rank 0)."""
    cfg: TrainConfig
    info: D.DistInfo
    device: torch.device
    run_dir: Path
    started: float
    root: Path
    train_set: object
    val_frames: torch.Tensor
    val_conds: torch.Tensor
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    state: RunState
    module: torch.nn.Module
    kl_schedule: KLAnneal
    tf_schedule: TeacherForcing
    baseline: float
    loader: object
    sampler: object
    reporter: RunReporter | None = None


@dataclass
class EpochResult:
    """One epoch's training pass: its metrics row, what stopped it (None, "budget" or a signal's
    name) and how far it got (``batches`` of ``total``)."""
    row: dict
    stopped: str | None
    batches: int
    total: int


def train_epoch(run: Run, epoch: int, stop: StopRequests) -> EpochResult:
    """Epoch ``epoch``'s train steps (continuing inside it if a stop ended it), then its row; a stop
    inside the epoch records everything needed to continue from that exact step in ``state.partial``."""
    cfg, info, state = run.cfg, run.info, run.state
    rng = seed_everything(cfg.seed, info.rank, epoch)
    partial = state.partial if state.partial and state.partial["epoch"] == epoch else None
    done = partial["batches"] if partial else 0  # batches of this epoch already trained
    run.sampler.set_epoch(epoch, start=done * cfg.batch_size)
    batches = train_data.batches(iter(run.loader))  # iter() draws the loader's base seed: before a restore
    sums = (restore_partial(partial, info, rng) or list(partial["sums"])) if partial else [0.0, 0.0, 0.0]
    state.partial = None
    ratio, seq_len = run.tf_schedule(epoch), cfg.seq_len_at(epoch)
    run.model.train()
    t0 = time.perf_counter()
    n_total = done + len(run.loader)
    bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, total=n_total, initial=done,
               disable=not (cfg.progress and info.is_main), dynamic_ncols=True)
    new, beta, stopped = train_steps(run, bar, epoch, rng, ratio, seq_len, sums, stop)
    bar.close()
    elapsed = time.perf_counter() - t0
    means = D.mean_across([s / max(1, done + new) for s in sums], info, run.device)
    if done + new >= n_total:
        state.epoch = epoch + 1
    else:
        state.partial = {"epoch": epoch, "batches": done + new, "sums": sums,
                         "rng": D.all_gather({"python": rng.getstate(), "sums": sums, **rng_states()}, info)}
    row = {"epoch": epoch + 1, "step": state.step, "n_future": seq_len - cfg.model.n_past,
           "loss": means[0], "mse": means[1], "kl": means[2],
           "beta": beta, "tf_ratio": ratio, "baseline_psnr": run.baseline, "epoch_s": elapsed,
           "seq_per_s": new * cfg.batch_size * info.world_size / max(elapsed, 1e-9),
           "lr": run.optimizer.param_groups[0]["lr"]}
    if state.partial is not None:  # a stop inside the epoch: recorded as such (see reporting.COLUMNS)
        row.update(partial=True, stopped=stopped, batches=done + new, epoch_batches=n_total)
    return EpochResult(row, stopped, done + new, n_total)


def train_steps(run: Run, bar, epoch: int, rng, ratio: float, seq_len: int, sums: list[float],
                 stop: StopRequests) -> tuple[int, float, str | None]:
    """The optimiser steps over ``bar``'s batches, adding loss/mse/kl to ``sums``; every rank stops at
    the same step when the budget is spent or a signal came (clocks differ). Returns (steps taken,
    the last KL weight, what stopped it or None)."""
    cfg, info, device, state = run.cfg, run.info, run.device, run.state
    new, beta = 0, 0.0
    for batch in bar:
        state.step += 1
        beta = run.kl_schedule(state.step)
        frames, conds, labels, flow = train_data.device_window(batch, seq_len, rng if cfg.random_offset else None,
                                                               cfg.moving_windows, device)
        teacher = teacher_mask(ratio, seq_len, cfg.tf_mode, rng)
        with autocast(cfg, device):
            loss, mse, kl = run.module(frames, conds, torch.tensor(beta, device=device), teacher, labels, flow)
        where = f"step {state.step} (epoch {epoch + 1}); the last good checkpoint is kept in {run.run_dir / 'last'}"
        loss_value = check_loss(loss, where, info, device)
        optimizer_step(loss, run.model, run.optimizer, run.scaler, cfg.grad_clip, where)
        sums[0] += loss_value
        sums[1] += float(mse.detach())
        sums[2] += float(kl.detach())
        new += 1
        bar.set_postfix(loss=f"{loss_value:.4f}", beta=f"{beta:.2g}", refresh=False)
        if run.reporter is not None:
            run.reporter.log_step(state.step, {"loss": loss_value, "beta": beta})
        over_budget = cfg.max_minutes is not None and time.perf_counter() - run.started > cfg.max_minutes * 60.0
        if D.any_flag(over_budget or stop.received is not None, info, device):
            return new, beta, stop.received or "budget"
    return new, beta, None


def validate_and_save(run: Run, row: dict) -> None:
    """Rank 0 validates, saves ``best/`` (if improved) and ``last/`` and reports the epoch; the other
    ranks wait."""
    cfg, state = run.cfg, run.state
    D.barrier(run.info)
    if run.info.is_main:
        psnr, preds = validate(run.model, run.val_frames, run.val_conds, cfg.model.n_past, cfg.val_n_future,
                               run.device, seed=cfg.seed)
        run.model.train()
        row["val_psnr"] = psnr
        improved = psnr > state.best_psnr
        if improved:
            state.best_psnr = psnr
        data_info = {"root": str(run.root), "seed": cfg.seed, "n_past": cfg.model.n_past, "n_future": cfg.n_future,
                     "losses": trained_losses(cfg)}
        save_checkpoints(run.run_dir, run.model, run.optimizer, run.scaler, state, row,
                         history=run.reporter.history + [dict(row)], improved=improved, data_info=data_info,
                         snapshot_every=cfg.snapshot_every)
        report_epoch(cfg, run.run_dir, run.reporter, state, row, improved, run.val_frames, preds)
    D.barrier(run.info)


def trained_losses(cfg: TrainConfig) -> dict[str, float]:
    """The loss terms a run trains with (recorded in its checkpoints): MSE weight 1 and the optional ones."""
    names = ("change_weight", "arm_weight", "l1_weight", "gdl_weight", "flow_weight", "mask_weight", "warp_weight")
    return {"mse": 1.0, "kl_max_beta": cfg.max_beta, **{n: getattr(cfg, n) for n in names if getattr(cfg, n)}}


def report_epoch(cfg: TrainConfig, run_dir: Path, reporter: RunReporter, state: RunState, row: dict,
                  improved: bool, val_frames: torch.Tensor, preds: torch.Tensor) -> None:
    """Rank 0, after the checkpoints: metrics row, sample GIF and the epoch's line. A stop inside an
    epoch (``state.partial`` set) logs its row too, marked ``partial`` (its validation is recorded and
    the plots are drawn); the resumed run logs the whole epoch again when it ends."""
    complete = state.partial is None
    reporter.log_epoch(row)
    if complete and cfg.sample_every and (state.epoch % cfg.sample_every == 0 or state.epoch == cfg.epochs):
        k = min(GIF_SEQUENCES, len(val_frames))
        write_sample_gif(run_dir / "samples" / f"epoch_{state.epoch:04d}.gif", val_frames[:k], preds[:k],
                         cfg.model.n_past)
    where = f"epoch {state.epoch}/{cfg.epochs}" if complete else \
        f"epoch {row['epoch']}/{cfg.epochs} (stopped after batch {state.partial['batches']})"
    reporter.say(f"[train] {where} step {state.step}: loss {row['loss']:.5f} "
                 f"mse {row['mse']:.5f} kl {row['kl']:.3f} beta {row['beta']:.2g} tf {row['tf_ratio']:.2f} | "
                 f"val PSNR {row['val_psnr']:.2f} dB (copy-last {row['baseline_psnr']:.2f}) | "
                 f"{row['seq_per_s']:.1f} seq/s" + (" | best" if improved else ""))
