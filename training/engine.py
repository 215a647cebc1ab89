"""The training run: setup, the epoch loop, checkpoints, resume, DDP, mixed precision.

Checkpoints (`bair_world.checkpoint`) in the run folder: ``last/`` after every epoch (with the
optimiser, scaler, step and metrics history as resume state) and ``best/`` (highest validation
PSNR). Resume is exact at epoch granularity: every RNG is reseeded from (seed, rank, epoch) at the
start of each epoch and the sampler's order is a function of (seed, epoch), so a run killed at any
point and resumed from ``last/`` retraces the uninterrupted run.

A wall-clock budget (``max_minutes``) stops the run after the optimiser step that exceeds it, in
the middle of an epoch if need be: the final validation and both checkpoints are written, and the
last checkpoint's resume state records the epoch's progress (batches done, loss sums, every
rank's RNG states), so ``--resume`` continues from that exact step as if never stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from tqdm import tqdm

from bair_world.checkpoint import load_checkpoint, save_checkpoint
from bair_world.data.bair_folder import BAIR_SEQ_LEN
from bair_world.data.packed import open_dataset
from bair_world.models import SVG
from bair_world.schedules import KLAnneal, TeacherForcing
from bair_world.training import data as train_data
from bair_world.training import distributed as D
from bair_world.training.config import TrainConfig
from bair_world.training.loop import SequenceLoss, baseline_psnr, seed_everything, teacher_mask, validate
from bair_world.training.reporting import RunReporter, write_sample_gif
from bair_world.training.resume import RunState, has_checkpoint, restore_partial, resume_run, rng_states
from bair_world.training.runlock import RunLock, check_run_folder
from bair_world.training.signals import StopRequests

GIF_SEQUENCES = 4


class TrainingDiverged(RuntimeError):
    """The loss or gradient became NaN/inf; the run stopped and its last good checkpoint is kept."""


def _run_dir(cfg: TrainConfig, info: D.DistInfo) -> Path:
    if cfg.resume is not None:
        return Path(cfg.resume)
    name = [cfg.name or f"run-{time.strftime('%Y%m%d-%H%M%S')}"]
    if info.enabled:  # every rank must use rank 0's name (timestamps may differ)
        dist.broadcast_object_list(name, src=0)
    return Path(cfg.log_dir) / name[0]


def _autocast(cfg: TrainConfig, device: torch.device):
    if cfg.amp == "none" or (device.type != "cuda" and cfg.amp == "fp16"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if cfg.amp == "bf16" else torch.float16)


def run_training(cfg: TrainConfig, save_config: Callable[[Path, TrainConfig], None] | None = None) -> dict:
    """Run (or resume) the training described by ``cfg``; see `bair_world.training.train.main`."""
    info, device = D.init_distributed(cfg.device)
    try:
        run_dir = _run_dir(cfg, info)
        # Rank 0 alone writes the folder, so it alone holds the lock; it is taken before any work.
        with RunLock(run_dir) if info.is_main else contextlib.nullcontext():
            check_run_folder(run_dir, resuming=cfg.resume is not None, config_file="train_config.json")
            summary = _train(cfg, info, device, save_config, run_dir)
            D.barrier(info)  # no rank tears the group down while another still talks to it (gloo aborts)
        return summary
    finally:
        D.cleanup(info)


def _train(cfg: TrainConfig, info: D.DistInfo, device: torch.device, save_config, run_dir: Path) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # Rank 0 first: generating the default synthetic data must not race between ranks.
    if not info.is_main:
        D.barrier(info)
    root = train_data.resolve_data_root(cfg)
    if info.is_main:
        D.barrier(info)
    train_set = open_dataset(root, "train", seq_len=BAIR_SEQ_LEN if cfg.random_offset else cfg.seq_len,
                                  cache=cfg.cache_data)
    val_frames, val_conds = train_data.load_validation(root, cfg)
    if val_frames.shape[1] < cfg.val_seq_len:
        raise ValueError(f"{root}/validate: sequences have {val_frames.shape[1]} steps, need {cfg.val_seq_len}")

    torch.manual_seed(cfg.seed)  # model initialisation
    model = SVG(cfg.model)
    model.set_normalisation(*train_data.condition_stats(train_set))
    if cfg.init_from is not None and cfg.resume is None:
        _init_from(model, cfg.init_from)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    fp16 = device.type == "cuda" and cfg.amp == "fp16"
    scaler = torch.amp.GradScaler("cuda", enabled=fp16)
    state = RunState(history=[])
    if cfg.resume is not None and has_checkpoint(run_dir / "last"):
        state = resume_run(run_dir, model, optimizer, scaler, cfg)
    if cfg.resume is not None and info.is_main:
        print(f"[train] resuming {run_dir} from step {state.step} (epoch {state.epoch + 1}"
              + (f", batch {state.partial['batches']}" if state.partial else "") + ")", flush=True)
    model.to(device)
    for group in optimizer.state.values():  # optimiser state follows the parameters' device
        for k, v in group.items():
            if torch.is_tensor(v) and k != "step":
                group[k] = v.to(device)
    if device.type == "cuda" and cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    module: torch.nn.Module = SequenceLoss(model, cfg.model.n_past, cfg.detach_feedback, cfg.l1_weight,
                                           cfg.gdl_weight)
    if info.enabled:
        module = torch.nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        module = torch.compile(module)

    kl_schedule = KLAnneal(cfg.kl_anneal, total_steps=cfg.total_steps, cycles=cfg.kl_anneal_cycle,
                           ratio=cfg.kl_anneal_ratio, max_beta=cfg.max_beta)
    tf_schedule = TeacherForcing(cfg.tfr, cfg.tfr_start_decay_epoch, cfg.tfr_decay_step, cfg.tfr_lower_bound,
                                 cfg.tf_mode)
    baseline = baseline_psnr(val_frames, cfg.model.n_past)
    loader, sampler = train_data.make_train_loader(train_set, cfg, info, device)
    reporter = None
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if save_config is not None:
            save_config(run_dir, cfg)
        reporter = RunReporter(run_dir, state.history, resume_step=state.step if state.step else None)
        print(f"[train] {run_dir}: {model.parameter_count():,} parameters, {len(train_set)} train / "
              f"{len(val_frames)} val sequences from {root}, device {device}, {info.world_size} process(es), "
              f"{kl_schedule!r}, {tf_schedule!r}, copy-last-frame PSNR {baseline:.2f} dB", flush=True)

    row: dict = {}
    budget_s = None if cfg.max_minutes is None else cfg.max_minutes * 60.0
    started = time.perf_counter()
    stopped: str | None = None  # "budget", or the name of the signal that stopped the run
    stop = StopRequests().install()
    try:
        for epoch in range(state.epoch, cfg.epochs):
            rng = seed_everything(cfg.seed, info.rank, epoch)
            partial = state.partial if state.partial and state.partial["epoch"] == epoch else None
            done = partial["batches"] if partial else 0  # batches of this epoch already trained
            sampler.set_epoch(epoch, start=done * cfg.batch_size)
            ratio = tf_schedule(epoch)
            seq_len = cfg.seq_len_at(epoch)
            model.train()
            sums = list(partial["sums"]) if partial else [0.0, 0.0, 0.0]
            beta = 0.0
            t0 = time.perf_counter()
            batches = train_data.batches(iter(loader))  # iter() draws the loader's base seed: before a restore
            if partial:
                sums = restore_partial(partial, info, rng) or sums
            state.partial = None
            n_total = done + len(loader)
            bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, total=n_total, initial=done,
                       disable=not (cfg.progress and info.is_main), dynamic_ncols=True)
            new = 0
            for batch in bar:
                state.step += 1
                beta = kl_schedule(state.step)
                frames, conds = train_data.random_crop(batch, seq_len, rng if cfg.random_offset else None)
                frames = frames.to(device, non_blocking=True)
                conds = conds.to(device, non_blocking=True)
                teacher = teacher_mask(ratio, seq_len, cfg.tf_mode, rng)
                with _autocast(cfg, device):
                    loss, mse, kl = module(frames, conds, torch.tensor(beta, device=device), teacher)
                loss_value = float(loss.detach())
                if D.any_flag(not math.isfinite(loss_value), info, device):
                    raise TrainingDiverged(f"non-finite loss ({loss_value}) at step {state.step} (epoch {epoch + 1}); "
                                           f"the last good checkpoint is kept in {run_dir / 'last'}")
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)
                if not fp16 and not torch.isfinite(norm):  # fp16: the scaler skips inf steps itself
                    raise TrainingDiverged(f"non-finite gradient norm at step {state.step} (epoch {epoch + 1}); "
                                           f"the last good checkpoint is kept in {run_dir / 'last'}")
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                sums[0] += loss_value
                sums[1] += float(mse.detach())
                sums[2] += float(kl.detach())
                new += 1
                bar.set_postfix(loss=f"{loss_value:.4f}", beta=f"{beta:.2g}", refresh=False)
                if reporter is not None:
                    reporter.log_step(state.step, {"loss": loss_value, "beta": beta})
                # Every rank must agree to stop at the same step (clocks differ slightly).
                over_budget = budget_s is not None and time.perf_counter() - started > budget_s
                if D.any_flag(over_budget or stop.received is not None, info, device):
                    stopped = stop.received or "budget"
                    break
            bar.close()
            elapsed = time.perf_counter() - t0
            n_batches = max(1, done + new)
            means = D.mean_across([s / n_batches for s in sums], info, device)
            finished = done + new >= n_total
            if finished:
                state.epoch = epoch + 1
            else:  # stopped inside the epoch: everything needed to continue from this exact step
                state.partial = {"epoch": epoch, "batches": done + new, "sums": sums,
                                 "rng": D.all_gather({"python": rng.getstate(), "sums": sums, **rng_states()}, info)}
            row = {"epoch": epoch + 1, "step": state.step, "n_future": seq_len - cfg.model.n_past,
                   "loss": means[0], "mse": means[1], "kl": means[2],
                   "beta": beta, "tf_ratio": ratio, "baseline_psnr": baseline, "epoch_s": elapsed,
                   "seq_per_s": new * cfg.batch_size * info.world_size / max(elapsed, 1e-9),
                   "lr": optimizer.param_groups[0]["lr"]}
            D.barrier(info)
            if info.is_main:
                _end_of_epoch(cfg, run_dir, model, optimizer, scaler, state, row, val_frames, val_conds, device,
                              reporter, root)
            D.barrier(info)
            if stopped:
                if info.is_main:
                    why = f"time budget of {cfg.max_minutes:g} min reached" if stopped == "budget" else stopped
                    print(f"[train] {why} after step {state.step} (epoch {epoch + 1}, batch {done + new}/{n_total}); "
                          f"--resume {run_dir} continues", flush=True)
                break
    finally:
        stop.restore()
        if reporter is not None:
            reporter.close()
    history = reporter.history if reporter is not None else []
    in_sync = D.params_in_sync(model, info, device)
    if not in_sync:
        raise RuntimeError(f"{run_dir}: parameters differ between the {info.world_size} ranks after training")
    return {"run_dir": str(run_dir), "epoch": state.epoch, "step": state.step, "is_main": info.is_main,
            "best_val_psnr": state.best_psnr, "val_psnr": row.get("val_psnr", math.nan),
            "baseline_psnr": baseline, "seq_per_s": row.get("seq_per_s", math.nan), "history": history,
            "stopped_by_budget": stopped == "budget", "stopped_by_signal": None if stopped in (None, "budget") else stopped,
            "world_size": info.world_size, "ranks_in_sync": in_sync}


def _init_from(model: SVG, path: Path) -> None:
    """Load a checkpoint's weights and normalisation into ``model`` (same architecture) to fine-tune it."""
    source, info = load_checkpoint(path)
    if source.cfg.replace(motion=model.cfg.motion) != model.cfg:
        raise ValueError(f"--init-from {path}: its model {info.get('model')} differs from this run's "
                         f"{dataclasses.asdict(model.cfg)}; pass the same model options")
    # A model with the pixel-motion head may start from one without it: the head keeps its fresh init.
    missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
    if unexpected or any(not k.startswith("motion_head.") for k in missing):
        raise ValueError(f"--init-from {path}: weights do not fit (missing {missing[:3]}, unexpected {unexpected[:3]})")
    print(f"[train] initialised from {path} (step {info.get('step')})"
          + (", new pixel-motion head" if missing else ""), flush=True)


def _end_of_epoch(cfg, run_dir, model, optimizer, scaler, state, row, val_frames, val_conds, device,
                  reporter, root) -> None:
    """Rank 0: validate, write checkpoints, metrics, plots and sample GIFs. Inside an epoch (a budget
    stop, ``state.partial`` set) the row is not logged: the resumed run logs the whole epoch."""
    n_past = cfg.model.n_past
    psnr, preds = validate(model, val_frames, val_conds, n_past, cfg.val_n_future, device, seed=cfg.seed)
    model.train()
    row["val_psnr"] = psnr
    improved = psnr > state.best_psnr
    if improved:
        state.best_psnr = psnr
    metrics = {k: v for k, v in row.items() if isinstance(v, (int, float))}
    data_info = {"root": str(root), "seed": cfg.seed, "n_past": n_past, "n_future": cfg.n_future}
    complete = state.partial is None
    history = (reporter.history if reporter is not None else []) + ([dict(row)] if complete else [])
    resume_state = {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                    "best_psnr": state.best_psnr, "history": history}
    if not complete:
        resume_state["partial"] = state.partial
    if improved:
        save_checkpoint(run_dir / "best", model, step=state.step, epoch=state.epoch, metrics=metrics,
                        data_info=data_info)
    save_checkpoint(run_dir / "last", model, step=state.step, epoch=state.epoch, metrics=metrics,
                    data_info=data_info, resume_state=resume_state)
    if reporter is not None and complete:
        reporter.log_epoch(row)
    if complete and cfg.sample_every and (state.epoch % cfg.sample_every == 0 or state.epoch == cfg.epochs):
        k = min(GIF_SEQUENCES, len(val_frames))
        write_sample_gif(run_dir / "samples" / f"epoch_{state.epoch:04d}.gif", val_frames[:k], preds[:k], n_past)
    where = f"epoch {state.epoch}/{cfg.epochs}" if complete else \
        f"epoch {row['epoch']}/{cfg.epochs} (stopped after batch {state.partial['batches']})"
    print(f"[train] {where} step {state.step}: loss {row['loss']:.5f} "
          f"mse {row['mse']:.5f} kl {row['kl']:.3f} beta {row['beta']:.2g} tf {row['tf_ratio']:.2f} | "
          f"val PSNR {psnr:.2f} dB (copy-last {row['baseline_psnr']:.2f}) | {row['seq_per_s']:.1f} seq/s"
          + (" | best" if improved else ""), flush=True)
