"""Train an SVG world model: ``bair-world train [--preset tiny|cpu|seed|bundled_base|bundled] [--quick] [options]``.

With no arguments it trains the `cpu` preset on the embedded synthetic pushing-world data. Every
`TrainConfig` / `ModelConfig` field is an option (``--help``); the seed's names (``--niter``,
``--data_root``, ``--kl_anneal_cyclical``, ...) are accepted too. ``python training/train.py`` is the
same command; ``torchrun --nproc_per_node N training/train.py ...`` trains with DDP. ``--resume
RUN_DIR`` continues a run from its last checkpoint; ``--max-minutes M`` stops after M minutes
(resumable at that exact step).

The run, top-down (`train`): set up (data, model, optimiser, schedules, run folder), then for each
epoch: train steps, validate, save ``best/`` and ``last/``, check the time budget. Resume is exact:
every RNG is reseeded from (seed, rank, epoch) at the start of each epoch and the sampler's order is a
function of (seed, epoch); a stop inside an epoch (budget, SIGINT/SIGTERM) records the epoch's
progress (batches done, loss sums, every rank's RNG states) so ``--resume`` continues from that step.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from bair_world.checkpoint import CheckpointError
from bair_world.data import DataError
from bair_world.data.bair_folder import BAIR_SEQ_LEN
from bair_world.data.packed import open_dataset
from bair_world.training import data as train_data
from bair_world.training import distributed as D
from bair_world.training import options, presets
from bair_world.training.config import CONFIG_FILE, TrainConfig
from bair_world.training.loss import SequenceLoss, teacher_mask
from bair_world.training.reporting import RunReporter, write_sample_gif
from bair_world.training.resume import RunState, has_checkpoint, restore_partial, resume_run, rng_states, \
    save_checkpoints
from bair_world.training.runlock import RunFolderError, RunLock, check_run_folder
from bair_world.training.schedules import KLAnneal, TeacherForcing
from bair_world.training.model_init import build_model, to_device
from bair_world.training.signals import StopRequests
from bair_world.training.step import TrainingDiverged, autocast, check_loss, optimizer_step, seed_everything
from bair_world.training.validation import baseline_psnr, validate

GIF_SEQUENCES = 4


def train(cfg: TrainConfig | None = None, started: float | None = None) -> dict:
    """Train with ``cfg`` (default: the `cpu` preset) and return the run summary.

    ``started`` (a `time.perf_counter` value, default: now) is when the invocation began: the
    ``max_minutes`` budget counts from it, data generation and setup included.

    Returns:
        ``{"run_dir", "epoch", "step", "best_val_psnr", "val_psnr", "baseline_psnr", "seq_per_s",
        "history", "stopped_by_budget", "stopped_by_signal", "world_size", "ranks_in_sync", "is_main"}``.

    Raises:
        TrainingDiverged: the loss became NaN/inf (the message names the step; the last good
            checkpoint is kept).
        DataError: the data is missing or malformed.
        CheckpointError: resuming from a corrupt or incomplete ``last`` checkpoint (names the file).
    """
    started = time.perf_counter() if started is None else started
    cfg = presets.training_preset(presets.DEFAULT_PRESET) if cfg is None else cfg
    info, device = D.init_distributed(cfg.device)
    try:
        if cfg.resume is not None:
            run_dir = Path(cfg.resume)
        else:
            run_dir = Path(cfg.log_dir) / D.shared_name(cfg.name or f"run-{time.strftime('%Y%m%d-%H%M%S')}", info)
        # Rank 0 alone writes the folder, so it alone holds the lock; it is taken before any work.
        with RunLock(run_dir) if info.is_main else contextlib.nullcontext():
            check_run_folder(run_dir, resuming=cfg.resume is not None, config_file=CONFIG_FILE)
            summary = _train_rank(cfg, info, device, run_dir, started)
            D.barrier(info)  # no rank tears the group down while another still talks to it (gloo aborts)
        return summary
    finally:
        D.cleanup(info)


def _train_rank(cfg: TrainConfig, info: D.DistInfo, device: torch.device, run_dir: Path,
                started: float | None = None) -> dict:
    """The run in ``run_dir`` on this process (rank ``info.rank``); see `train` (``started``: the
    budget's start, default now)."""
    started = time.perf_counter() if started is None else started
    # -- setup: data, model, optimiser, schedules, run folder -------------------------------------
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    with D.rank0_first(info):  # generating the default synthetic data must not race between ranks
        root = train_data.resolve_data_root(cfg)
    train_set = open_dataset(root, "train", seq_len=BAIR_SEQ_LEN if cfg.random_offset else cfg.seq_len,
                             cache=cfg.cache_data)
    val_frames, val_conds = train_data.load_validation(root, cfg)
    model = build_model(cfg, train_data.condition_stats(train_set))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and cfg.amp == "fp16")
    state = RunState(history=[])
    if cfg.resume is not None and has_checkpoint(run_dir / "last"):
        state = resume_run(run_dir, model, optimizer, scaler, cfg)
    resuming = (f"[train] resuming {run_dir} from step {state.step} (epoch {state.epoch + 1}"
                + (f", batch {state.partial['batches']}" if state.partial else "") + ")")
    if cfg.resume is not None and info.is_main:
        print(resuming, flush=True)
    to_device(model, optimizer, cfg, device)
    module = D.wrap(SequenceLoss(model, cfg.model.n_past, cfg.detach_feedback, cfg.l1_weight, cfg.gdl_weight,
                                  cfg.change_weight),
                    info, device)
    if cfg.compile:
        module = torch.compile(module)
    kl_schedule = KLAnneal(cfg.kl_anneal, total_steps=cfg.total_steps, cycles=cfg.kl_anneal_cycle,
                           ratio=cfg.kl_anneal_ratio, max_beta=cfg.max_beta)
    tf_schedule = TeacherForcing(cfg.tfr, cfg.tfr_start_decay_epoch, cfg.tfr_decay_step, cfg.tfr_lower_bound)
    baseline = baseline_psnr(val_frames, cfg.model.n_past)
    loader, sampler = train_data.make_train_loader(train_set, cfg, info, device)
    reporter = None
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg.save(run_dir)
        reporter = RunReporter(run_dir, state.history, resume_step=state.step if state.step else None)
        if cfg.resume is not None:
            reporter.log_text(resuming)
        reporter.say(f"[train] {run_dir}: {model.parameter_count():,} parameters, {len(train_set)} train / "
                     f"{len(val_frames)} val sequences from {root}, device {device}, {info.world_size} process(es), "
                     f"{kl_schedule!r}, {tf_schedule!r}, copy-last-frame PSNR {baseline:.2f} dB"
                     + (f", budget {cfg.max_minutes:g} min ({(time.perf_counter() - started) / 60:.1f} spent "
                        "on setup)" if cfg.max_minutes is not None else ""))

    row: dict = {}
    stopped: str | None = None  # "budget", or the name of the signal that stopped the run
    stop = StopRequests().install()
    try:
        for epoch in range(state.epoch, cfg.epochs):
            # -- train steps (continuing inside the epoch if a stop ended it) -----------------------
            rng = seed_everything(cfg.seed, info.rank, epoch)
            partial = state.partial if state.partial and state.partial["epoch"] == epoch else None
            done = partial["batches"] if partial else 0  # batches of this epoch already trained
            sampler.set_epoch(epoch, start=done * cfg.batch_size)
            batches = train_data.batches(iter(loader))  # iter() draws the loader's base seed: before a restore
            sums = (restore_partial(partial, info, rng) or list(partial["sums"])) if partial else [0.0, 0.0, 0.0]
            state.partial = None
            ratio, seq_len, beta = tf_schedule(epoch), cfg.seq_len_at(epoch), 0.0
            model.train()
            t0 = time.perf_counter()
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
                with autocast(cfg, device):
                    loss, mse, kl = module(frames, conds, torch.tensor(beta, device=device), teacher)
                where = (f"step {state.step} (epoch {epoch + 1}); the last good checkpoint is kept in "
                         f"{run_dir / 'last'}")
                loss_value = check_loss(loss, where, info, device)
                optimizer_step(loss, model, optimizer, scaler, cfg.grad_clip, where)
                sums[0] += loss_value
                sums[1] += float(mse.detach())
                sums[2] += float(kl.detach())
                new += 1
                bar.set_postfix(loss=f"{loss_value:.4f}", beta=f"{beta:.2g}", refresh=False)
                if reporter is not None:
                    reporter.log_step(state.step, {"loss": loss_value, "beta": beta})
                # -- budget and stop signals: every rank stops at the same step (clocks differ) ----
                over_budget = cfg.max_minutes is not None and time.perf_counter() - started > cfg.max_minutes * 60.0
                if D.any_flag(over_budget or stop.received is not None, info, device):
                    stopped = stop.received or "budget"
                    break
            bar.close()
            elapsed = time.perf_counter() - t0
            means = D.mean_across([s / max(1, done + new) for s in sums], info, device)
            if done + new >= n_total:
                state.epoch = epoch + 1
            else:  # stopped inside the epoch: everything needed to continue from this exact step
                state.partial = {"epoch": epoch, "batches": done + new, "sums": sums,
                                 "rng": D.all_gather({"python": rng.getstate(), "sums": sums, **rng_states()}, info)}
            row = {"epoch": epoch + 1, "step": state.step, "n_future": seq_len - cfg.model.n_past,
                   "loss": means[0], "mse": means[1], "kl": means[2],
                   "beta": beta, "tf_ratio": ratio, "baseline_psnr": baseline, "epoch_s": elapsed,
                   "seq_per_s": new * cfg.batch_size * info.world_size / max(elapsed, 1e-9),
                   "lr": optimizer.param_groups[0]["lr"]}
            if state.partial is not None:  # a stop inside the epoch: recorded as such (see reporting.COLUMNS)
                row.update(partial=True, stopped=stopped, batches=done + new, epoch_batches=n_total)

            # -- validate and save (rank 0) ---------------------------------------------------------
            D.barrier(info)
            if info.is_main:
                psnr, preds = validate(model, val_frames, val_conds, cfg.model.n_past, cfg.val_n_future, device,
                                       seed=cfg.seed)
                model.train()
                row["val_psnr"] = psnr
                improved = psnr > state.best_psnr
                if improved:
                    state.best_psnr = psnr
                save_checkpoints(run_dir, model, optimizer, scaler, state, row,
                                 history=reporter.history + [dict(row)], improved=improved,
                                 data_info={"root": str(root), "seed": cfg.seed, "n_past": cfg.model.n_past,
                                            "n_future": cfg.n_future})
                _report_epoch(cfg, run_dir, reporter, state, row, improved, val_frames, preds)
            D.barrier(info)

            # -- stop: budget spent or a signal ---------------------------------------------------
            if stopped:
                if info.is_main:
                    why = f"time budget of {cfg.max_minutes:g} min reached" if stopped == "budget" else stopped
                    reporter.say(f"[train] {why} after step {state.step} (epoch {epoch + 1}, batch "
                                 f"{done + new}/{n_total}); --resume {run_dir} continues")
                break
    finally:
        stop.restore()
        if reporter is not None:
            reporter.close()
    in_sync = D.params_in_sync(model, info, device)
    if not in_sync:
        raise RuntimeError(f"{run_dir}: parameters differ between the {info.world_size} ranks after training")
    return {"run_dir": str(run_dir), "epoch": state.epoch, "step": state.step, "is_main": info.is_main,
            "best_val_psnr": state.best_psnr, "val_psnr": row.get("val_psnr", math.nan),
            "baseline_psnr": baseline, "seq_per_s": row.get("seq_per_s", math.nan),
            "history": reporter.history if reporter is not None else [],
            "stopped_by_budget": stopped == "budget", "stopped_by_signal": None if stopped in (None, "budget") else stopped,
            "world_size": info.world_size, "ranks_in_sync": in_sync}


def _report_epoch(cfg: TrainConfig, run_dir: Path, reporter: RunReporter, state: RunState, row: dict,
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


def parse_config(argv: list[str] | None = None, prog: str = "train.py") -> TrainConfig:
    """Command line -> `TrainConfig` (see `bair_world.training.options.parse_config`)."""
    return options.parse_config(argv, prog=prog)


def main(argv: list[str] | None = None, prog: str = "train.py") -> int:
    """Entry point: parse, train, print the summary.

    Every failure is one line on stderr naming the argument, file or folder. Exit status: 0 done,
    1 diverged, 2 a bad argument, file or folder (nothing trained), 128 + the signal's number when
    SIGINT/SIGTERM stopped the run (its resumable checkpoint is saved; the line says how to resume).
    """
    started = time.perf_counter()  # --max-minutes counts the whole invocation
    command = "python training/train.py" if prog == "train.py" else prog
    try:
        cfg = parse_config(argv, prog)
        summary = train(cfg, started)
    except TrainingDiverged as e:
        print(f"{prog}: stopped: {e}", file=sys.stderr)
        return 1
    except DataError as e:
        print(f"{prog}: bad data: {e}", file=sys.stderr)
        return 2
    except CheckpointError as e:
        print(f"{prog}: cannot resume: {e}", file=sys.stderr)
        return 2
    except RunFolderError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an unwritable, read-only or full log dir, a path that is a file
        where = f"{e.filename}: " if e.filename else ""
        print(f"{prog}: cannot write: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the training loop (or a second Ctrl-C): no checkpoint of this step
        print(f"{prog}: interrupted before a checkpoint of the current step was saved; --resume continues "
              "from the last saved one, if any", file=sys.stderr)
        return 130
    if summary.get("stopped_by_signal"):
        print(f"{prog}: stopped by {summary['stopped_by_signal']} after step {summary['step']}; checkpoint saved, "
              f"continue with: {command} --resume {summary['run_dir']}", file=sys.stderr)
        return 128 + int(getattr(signal, summary["stopped_by_signal"]))
    if summary.get("is_main", True):
        print(f"run folder: {summary['run_dir']}")
        print(f"epochs {summary['epoch']}, steps {summary['step']}, {summary['seq_per_s']:.1f} sequences/s")
        print(f"validation PSNR {summary['val_psnr']:.2f} dB (best {summary['best_val_psnr']:.2f} dB), "
              f"copy-last-frame baseline {summary['baseline_psnr']:.2f} dB")
        if summary.get("stopped_by_budget"):
            print(f"stopped by the {cfg.max_minutes:g} minute budget; continue with: {command} --resume "
                  f"{summary['run_dir']}")
        if summary.get("world_size", 1) > 1:
            print(f"parameters identical on all {summary['world_size']} ranks: {summary['ranks_in_sync']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
