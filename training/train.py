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

from bair_world.cli import script_main
from bair_world.data.bair_folder import BAIR_SEQ_LEN
from bair_world.data.open import open_dataset
from bair_world.training import data as train_data
from bair_world.training import distributed as D
from bair_world.training import options, presets
from bair_world.training.config import CONFIG_FILE, TrainConfig
from bair_world.training.epoch import EpochResult, Run, train_epoch, validate_and_save
from bair_world.training.loss import SequenceLoss
from bair_world.training.model_init import build_model, to_device
from bair_world.training.reporting import RunReporter
from bair_world.training.resume import RunState, has_checkpoint, resume_run
from bair_world.training.runlock import RunLock, check_run_folder
from bair_world.training.schedules import KLAnneal, TeacherForcing
from bair_world.training.signals import StopRequests
from bair_world.training.step import TrainingDiverged
from bair_world.training.validation import baseline_psnr


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
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run = _set_up(cfg, info, device, run_dir, started)
    epoch = None
    stop = StopRequests().install()
    try:
        for index in range(run.state.epoch, cfg.epochs):
            epoch = train_epoch(run, index, stop)
            validate_and_save(run, epoch.row)
            if epoch.stopped:
                _say_stopped(run, epoch, index)
                break
    finally:
        stop.restore()
        if run.reporter is not None:
            run.reporter.close()
    return _finish(run, epoch)


def _set_up(cfg: TrainConfig, info: D.DistInfo, device: torch.device, run_dir: Path, started: float) -> Run:
    """Data, model, optimiser (resumed from ``last/`` when asked), loss module, schedules, loader and,
    on rank 0, the run folder with its config and reporter."""
    with D.rank0_first(info):  # generating the default synthetic data must not race between ranks
        root = train_data.resolve_data_root(cfg)
    train_set = open_dataset(root, "train", seq_len=BAIR_SEQ_LEN if cfg.random_offset else cfg.seq_len,
                             cache=cfg.cache_data, targets=cfg.needs_targets, stored=True)
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
                                  cfg.change_weight, cfg.flow_weight, cfg.mask_weight, cfg.warp_weight,
                                  cfg.arm_weight),
                    info, device)
    if cfg.compile:
        module = torch.compile(module)
    kl_schedule = KLAnneal(cfg.kl_anneal, total_steps=cfg.total_steps, cycles=cfg.kl_anneal_cycle,
                           ratio=cfg.kl_anneal_ratio, max_beta=cfg.max_beta)
    tf_schedule = TeacherForcing(cfg.tfr, cfg.tfr_start_decay_epoch, cfg.tfr_decay_step, cfg.tfr_lower_bound)
    loader, sampler = train_data.make_train_loader(train_set, cfg, info, device)
    run = Run(cfg, info, device, run_dir, started, root, train_set, val_frames, val_conds, model, optimizer,
               scaler, state, module, kl_schedule, tf_schedule, baseline_psnr(val_frames, cfg.model.n_past),
               loader, sampler)
    if info.is_main:
        run.reporter = _open_run_folder(run, resuming)
    return run


def _open_run_folder(run: Run, resuming: str) -> RunReporter:
    """Rank 0: create the run folder, save the config, start the reporter and say what the run is."""
    cfg = run.cfg
    run.run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run.run_dir)
    reporter = RunReporter(run.run_dir, run.state.history, resume_step=run.state.step if run.state.step else None)
    if cfg.resume is not None:
        reporter.log_text(resuming)
    reporter.say(f"[train] {run.run_dir}: {run.model.parameter_count():,} parameters, {len(run.train_set)} train / "
                 f"{len(run.val_frames)} val sequences from {run.root}, device {run.device}, "
                 f"{run.info.world_size} process(es), {run.kl_schedule!r}, {run.tf_schedule!r}, "
                 f"copy-last-frame PSNR {run.baseline:.2f} dB"
                 + (f", budget {cfg.max_minutes:g} min ({(time.perf_counter() - run.started) / 60:.1f} spent "
                    "on setup)" if cfg.max_minutes is not None else ""))
    return reporter


def _say_stopped(run: Run, epoch: EpochResult, index: int) -> None:
    """Rank 0: the line saying why the run stopped (budget or signal), where, and how to resume."""
    if run.info.is_main:
        why = f"time budget of {run.cfg.max_minutes:g} min reached" if epoch.stopped == "budget" else epoch.stopped
        run.reporter.say(f"[train] {why} after step {run.state.step} (epoch {index + 1}, batch "
                         f"{epoch.batches}/{epoch.total}); --resume {run.run_dir} continues")


def _finish(run: Run, epoch: EpochResult | None) -> dict:
    """Check that the ranks' parameters agree and return `train`'s summary (``epoch``: the last one
    trained, None if none was)."""
    info, state = run.info, run.state
    row, stopped = (epoch.row, epoch.stopped) if epoch is not None else ({}, None)
    in_sync = D.params_in_sync(run.model, info, run.device)
    if not in_sync:
        raise RuntimeError(f"{run.run_dir}: parameters differ between the {info.world_size} ranks after training")
    return {"run_dir": str(run.run_dir), "epoch": state.epoch, "step": state.step, "is_main": info.is_main,
            "best_val_psnr": state.best_psnr, "val_psnr": row.get("val_psnr", math.nan),
            "baseline_psnr": run.baseline, "seq_per_s": row.get("seq_per_s", math.nan),
            "history": run.reporter.history if run.reporter is not None else [],
            "stopped_by_budget": stopped == "budget", "stopped_by_signal": None if stopped in (None, "budget") else stopped,
            "world_size": info.world_size, "ranks_in_sync": in_sync}


def parse_config(argv: list[str] | None = None, prog: str = "train.py") -> TrainConfig:
    """Command line -> `TrainConfig` (see `bair_world.training.options.parse_config`)."""
    return options.parse_config(argv, prog=prog)


def main(argv: list[str] | None = None, prog: str = "train.py") -> int:
    """``python training/train.py``: the ``bair-world train`` command (`bair_world.training.options`)."""
    return script_main("bair_world.training.options", argv, prog)


def run_config(cfg: TrainConfig, prog: str = "train.py", started: float | None = None) -> int:
    """Train ``cfg`` and print the summary; returns the exit status.

    Exit status: 0 done, 1 diverged, 128 + the signal's number when SIGINT/SIGTERM stopped the run (its
    resumable checkpoint is saved; the line says how to resume). A bad file or folder is raised for
    `bair_world.cli_errors.run_command` (one line, exit status 2, nothing trained).
    """
    command = "python training/train.py" if prog == "train.py" else prog
    try:
        summary = train(cfg, started)
    except TrainingDiverged as e:
        print(f"{prog}: stopped: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before the training loop (or a second Ctrl-C): no checkpoint of this step
        print(f"{prog}: interrupted before a checkpoint of the current step was saved; --resume continues "
              "from the last saved one, if any", file=sys.stderr)
        return 130
    if summary.get("stopped_by_signal"):
        print(f"{prog}: stopped by {summary['stopped_by_signal']} after step {summary['step']}; checkpoint saved, "
              f"continue with: {command} --resume {summary['run_dir']}", file=sys.stderr)
        return 128 + int(getattr(signal, summary["stopped_by_signal"]))
    if summary.get("is_main", True):
        _print_summary(summary, cfg, command)
    return 0


def _print_summary(summary: dict, cfg: TrainConfig, command: str) -> None:
    print(f"run folder: {summary['run_dir']}")
    print(f"epochs {summary['epoch']}, steps {summary['step']}, {summary['seq_per_s']:.1f} sequences/s")
    print(f"validation PSNR {summary['val_psnr']:.2f} dB (best {summary['best_val_psnr']:.2f} dB), "
          f"copy-last-frame baseline {summary['baseline_psnr']:.2f} dB")
    if summary.get("stopped_by_budget"):
        print(f"stopped by the {cfg.max_minutes:g} minute budget; continue with: {command} --resume "
              f"{summary['run_dir']}")
    if summary.get("world_size", 1) > 1:
        print(f"parameters identical on all {summary['world_size']} ranks: {summary['ranks_in_sync']}")


if __name__ == "__main__":
    sys.exit(main())
