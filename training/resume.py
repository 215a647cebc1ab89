"""A run's checkpoints: writing ``best/``, ``last/`` (with the resume state) and ``snapshots/step-N/``,
and resuming from ``last/``.

``last/`` carries the optimiser, the scaler, the counters and the metrics history as resume state.

A budget stop (``max_minutes``) can end a run in the middle of an epoch; its resume state then
holds ``partial = {"epoch", "batches", "sums", "rng"}`` where ``rng`` lists every rank's RNG states
(python's `random.Random` of the loop, torch CPU, CUDA), so the resumed run draws the same
teacher-forcing decisions, crops and latents as the uninterrupted one would have.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from bair_world.configtypes import is_int, is_number
from bair_world.checkpoint import CheckpointError, load_checkpoint, load_resume_state, save_checkpoint
from bair_world.models import SVG
from bair_world.training import distributed as D
from bair_world.training.config import TrainConfig


@dataclass
class RunState:
    """Counters restored on resume."""

    epoch: int = 0
    """Epochs completed."""
    step: int = 0
    """Optimiser steps taken."""
    best_psnr: float = -math.inf
    """Best validation PSNR so far."""
    history: list | None = None
    """Per-epoch metric rows."""
    partial: dict | None = None
    """Progress inside an unfinished epoch (a budget stop): epoch, batches, sums, per-rank RNG states."""


def save_checkpoints(run_dir: Path, model: SVG, optimizer, scaler, state: RunState, row: dict,
                     history: list[dict], improved: bool, data_info: dict, snapshot_every: int = 0) -> None:
    """Write ``last/`` (with the resume state), ``best/`` if the validation PSNR ``improved``, and
    ``snapshots/step-<step>/`` after every ``snapshot_every``-th complete epoch (learning curves).

    Args:
        row: the epoch's metrics (its numbers are stored with the checkpoints).
        history: the per-epoch rows so far, this epoch's included when it is complete.
        data_info: where the data came from (root, seed, n_past, n_future, losses).
        snapshot_every: epochs between snapshots; 0: none.
    """
    metrics = {k: v for k, v in row.items() if isinstance(v, (int, float))}
    resume_state = {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                    "best_psnr": state.best_psnr, "history": history}
    if state.partial is not None:
        resume_state["partial"] = state.partial
    if improved:
        save_checkpoint(run_dir / "best", model, step=state.step, epoch=state.epoch, metrics=metrics,
                        data_info=data_info)
    save_checkpoint(run_dir / "last", model, step=state.step, epoch=state.epoch, metrics=metrics,
                    data_info=data_info, resume_state=resume_state)
    if snapshot_every and state.partial is None and state.epoch % snapshot_every == 0:
        save_checkpoint(run_dir / "snapshots" / f"step-{state.step:06d}", model, step=state.step, epoch=state.epoch,
                        metrics=metrics, data_info=data_info)


def resume_run(run_dir: Path, model: SVG, optimizer, scaler, cfg: TrainConfig) -> RunState:
    """Load ``run_dir/last`` into the model, optimiser and scaler; return the restored counters.

    Raises:
        CheckpointError: a file of the checkpoint is missing, corrupt or of another model config
            (the message names it).
    """
    last = run_dir / "last"
    loaded, info = load_checkpoint(last)
    if loaded.cfg != cfg.model:
        raise CheckpointError(last / "config.json", f"model config {loaded.cfg} differs from the run's {cfg.model}")
    model.load_state_dict(loaded.state_dict())
    state = load_resume_state(last) or {}
    _check_resume_state(state, last / "resume.pt")
    try:
        if "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(last / "resume.pt", f"optimiser state does not fit the model ({e})") from None
    return RunState(epoch=info["epoch"], step=info["step"], best_psnr=float(state.get("best_psnr", -math.inf)),
                    history=list(state.get("history", [])), partial=state.get("partial"))


def _check_resume_state(state: dict, file: Path) -> None:
    """The fields of a resume state the loop relies on have the right types, else CheckpointError."""
    if not isinstance(state, dict):
        raise CheckpointError(file, f"resume state must be a dict, got {type(state).__name__}")
    best = state.get("best_psnr", -math.inf)
    if not is_number(best):
        raise CheckpointError(file, f"best_psnr must be a number, got {best!r}")
    if not isinstance(state.get("history", []), list):
        raise CheckpointError(file, "history must be a list of per-epoch rows")
    partial = state.get("partial")
    if partial is None:
        return
    ok = isinstance(partial, dict) and all(
        is_int(partial.get(k)) and partial[k] >= 0 for k in ("epoch", "batches")) and isinstance(partial.get("sums"), list) and isinstance(partial.get("rng"), list)
    if not ok:
        raise CheckpointError(file, "partial (progress inside an epoch) needs integer epoch and batches, "
                                    "and lists sums and rng")


def has_checkpoint(path: Path) -> bool:
    """A checkpoint directory, or the backup an interrupted save leaves (which loading falls back to)."""
    return path.exists() or (path.parent / f".{path.name}.previous").is_dir()


def rng_states() -> dict:
    """This process's RNG states (torch CPU, CUDA if any), to resume inside an epoch."""
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def restore_partial(partial: dict, info: D.DistInfo, rng) -> list[float] | None:
    """Restore this rank's RNG states saved at a budget stop; returns this rank's loss sums of the
    epoch so far. With a different number of processes than at the stop, the RNG streams keep their
    per-epoch seeding and None is returned (the caller keeps rank 0's sums)."""
    states = partial.get("rng", [])
    if len(states) != info.world_size:
        if info.is_main:
            print(f"[train] resuming inside epoch {partial['epoch'] + 1} with {info.world_size} process(es), "
                  f"stopped with {len(states)}: RNG streams are reseeded, not restored", flush=True)
        return None
    mine = states[info.rank]
    rng.setstate(_as_tuple(mine["python"]))
    torch.set_rng_state(mine["torch"])
    if "cuda" in mine and torch.cuda.is_available():
        torch.cuda.set_rng_state(mine["cuda"])
    return list(mine["sums"]) if "sums" in mine else None


def _as_tuple(x):
    """Lists back to the tuples `random.Random.setstate` needs."""
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x
