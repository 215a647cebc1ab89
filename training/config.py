"""`TrainConfig`: everything a training run needs, the model architecture nested inside.

The command line of ``training/train.py`` is generated from this dataclass (and the nested
`ModelConfig`) by `bair_world.training.configcli`; field docstrings are the ``--help`` text.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bair_world.training.configcli import to_dict
from bair_world.configtypes import type_problems
from bair_world.models.config import ModelConfig
from bair_world.io import atomic_write_bytes
from bair_world.training.runlock import RunFolderError

CONFIG_FILE = "train_config.json"
"""A run folder's config file: what the run was started with (and what ``--resume`` continues)."""


@dataclass(frozen=True)
class TrainConfig:
    """A training run: data, optimisation, schedules, logging and hardware."""

    model: ModelConfig = field(default_factory=ModelConfig)
    """The architecture (its fields are options of their own: --backbone, --z-dim, ...)."""

    # -- data -----------------------------------------------------------------------------------
    data_root: Path | None = None
    """BAIR-format folder (train/ and validate/ inside); none = the embedded synthetic pushing-world
    data, generated once into the cache and reused."""
    quick: bool = False
    """Without data_root: train on the small quick-trial dataset (512 train / 64 validate sequences of the
    pushing world, 230 MB, a minute or two to generate once on 2 cores) instead of the full embedded
    default (8192 / 128 / 256 sequences, 3.4 GB, ~10-20 minutes to generate once). For a first run:
    bair-world train --quick --max-minutes 3."""
    n_future: int = 10
    """Frames predicted after the n_past context frames in training (sequence length n_past+n_future)."""
    n_future_start: int | None = None
    """Curriculum: train on n_future_start predicted frames at first, growing linearly to n_future
    over curriculum_epochs epochs (none = n_future from the start)."""
    curriculum_epochs: int = 0
    """Epochs over which the training horizon grows from n_future_start to n_future."""
    val_n_future: int = 10
    """Frames predicted after the n_past context frames in validation (the seed's protocol: 10)."""
    val_sequences: int = 64
    """Validation sequences scored each epoch (the first ones of the validate split); 0 = all."""
    num_workers: int = 0
    """DataLoader worker processes (0 = load in the training process)."""
    cache_data: bool = True
    """Keep decoded sequences in memory after the first read (folder-layout datasets; small ones only: a
    packed dataset is read memory-mapped and ignores it)."""
    random_offset: bool = True
    """Train on a random window of n_past+n_future steps of each sequence (else its first steps)."""

    # -- optimisation ---------------------------------------------------------------------------
    batch_size: int = 16
    """Sequences per optimiser step (per process under torchrun)."""
    epochs: int = 30
    """Training epochs (the seed's --niter)."""
    epoch_size: int = 50
    """Optimiser steps per epoch (batches drawn at random from the train split)."""
    lr: float = 2e-3
    """Adam learning rate."""
    beta1: float = 0.9
    """Adam beta1."""
    beta2: float = 0.999
    """Adam beta2."""
    grad_clip: float | None = 1.0
    """Clip the global gradient norm to this value; none = no clipping."""
    seed: int = 0
    """Seed of every random number generator of the run (sampler, latents, teacher forcing, init)."""
    max_minutes: float | None = None
    """Wall-clock budget of the whole invocation in minutes, counted from its start, so a first-time data
    generation is inside it (none = no limit): training stops at the end of the optimiser step that
    exceeds it (at least one step is trained), validates, writes best/last checkpoints, metrics and
    plots, and --resume continues from that exact step (a resumed run gets a fresh budget;
    --max-minutes overrides it). The embedded default dataset takes ~10-20 minutes to generate the
    first time; --quick uses a small one."""

    init_from: Path | None = None
    """Start from this checkpoint's weights and normalisation statistics (fine-tuning; the model
    options must match its architecture); ignored when resuming."""
    l1_weight: float = 0.0
    """Weight of an L1 pixel loss beside the MSE (0 = off, the seed's objective)."""
    gdl_weight: float = 0.0
    """Weight of the gradient difference loss (Mathieu et al. 2016) against blurred edges (0 = off)."""
    change_weight: float = 0.0
    """Extra MSE weight of the pixels that change (the arm, moved objects: training/loss.py
    `changed_pixels`); each counts 1 + change_weight times (0 = off, the seed's objective)."""
    arm_weight: float = 0.0
    """Extra MSE weight of the arm's pixels in the predicted frames (the simulator's labels: where the
    arm is now); each counts 1 + arm_weight times, on top of change_weight (0 = off). The arm is drawn
    from the end-effector position it is given, and is the least accurate part of the frame. Needs
    data from the built-in world (labels)."""
    flow_weight: float = 0.0
    """Weight of the true-flow loss (end-point error of the predicted flow at the arm's and objects'
    pixels; training/motion_loss.py). Needs data from the built-in world (it carries the true flow)."""
    mask_weight: float = 0.0
    """Weight of the branch-mask loss (warp where a part moved, the context frame where nothing
    changed). Needs data from the built-in world (labels and flow)."""
    moving_windows: float = 0.0
    """Oversample training windows where objects move: a window's offset is drawn with weight 1 +
    moving_windows x (its moving object pixels / the sequence's mean); 0 = uniform. Needs data from
    the built-in world (labels and flow)."""
    warp_weight: float = 0.0
    """Weight of the blurred-pyramid warp loss (the previous frame warped by the predicted flow against
    the next, at 1/1..1/8 resolution, where frames changed): teaches the flow from images alone."""

    # -- schedules ------------------------------------------------------------------------------
    kl_anneal: Literal["cyclical", "monotonic", "none"] = "monotonic"
    """KL weight schedule (Fu et al. 2019), stepped per optimiser step over the whole run."""
    kl_anneal_cycle: int = 3
    """Number of KL annealing cycles over the run (cyclical mode)."""
    kl_anneal_ratio: float = 0.5
    """Fraction of each cycle spent ramping beta up from 0."""
    max_beta: float = 1e-4
    """Ceiling of the KL weight beta (MSE is a pixel mean, KL a sum over z: 1e-4 as in SVG)."""
    tfr: float = 1.0
    """Teacher-forcing ratio before decay."""
    tfr_start_decay_epoch: int = 100
    """First (0-based) epoch whose teacher-forcing ratio is decayed."""
    tfr_decay_step: float = 0.003
    """Teacher-forcing ratio decrease per epoch."""
    tfr_lower_bound: float = 0.1
    """Floor of the teacher-forcing ratio."""
    tf_mode: Literal["sequence", "step"] = "sequence"
    """"sequence": one draw per batch decides teacher forcing for all its steps (the seed);
    "step": one draw per time step (scheduled sampling)."""
    detach_feedback: bool = False
    """Detach a fed-back prediction from the graph (off: gradients flow through the model's own
    predictions, as in the seed)."""

    # -- logging and checkpoints ----------------------------------------------------------------
    log_dir: Path = Path("runs")
    """Parent folder of run folders."""
    name: str | None = None
    """Run folder name under log_dir; none = <preset>-<date>-<time>."""
    resume: Path | None = None
    """Continue the run in this folder from its last checkpoint (same step, schedules, RNG)."""
    snapshot_every: int = 0
    """Keep the model of every this many epochs in snapshots/step-<N>/ (for learning curves); 0 = never."""
    sample_every: int = 5
    """Write a GIF of validation predictions every this many epochs (and after the last); 0 = never."""
    progress: bool = True
    """Show tqdm progress bars."""

    # -- hardware -------------------------------------------------------------------------------
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to train: auto = cuda if available, else cpu."""
    amp: Literal["none", "bf16", "fp16"] = "none"
    """Autocast precision: bf16 on CUDA or CPU (CPUs with AVX512-BF16/AMX run convolutions faster),
    fp16 on CUDA only (with a GradScaler; ignored on CPU)."""
    channels_last: bool = True
    """Channels-last memory format for the convolutions on CUDA."""
    compile: bool = False
    """Compile the model's step with torch.compile."""
    threads: int | None = None
    """torch CPU threads per process; none = torch's default."""

    def __post_init__(self):
        problems = type_problems(self)
        if problems:  # the checks below assume the right types
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))
        for name in ("n_future", "val_n_future", "batch_size", "epochs", "epoch_size", "kl_anneal_cycle"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("val_sequences", "num_workers", "sample_every", "snapshot_every", "curriculum_epochs"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            problems.append(f"max_minutes must be > 0 or none, got {self.max_minutes}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            problems.append(f"grad_clip must be > 0 or none, got {self.grad_clip}")
        if self.n_future_start is not None and not 1 <= self.n_future_start <= self.n_future:
            problems.append(f"need 1 <= n_future_start <= n_future, got {self.n_future_start}, {self.n_future}")
        for name in ("l1_weight", "gdl_weight", "change_weight", "arm_weight", "flow_weight", "mask_weight",
                     "warp_weight", "moving_windows"):
            if not getattr(self, name) >= 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if (self.flow_weight or self.mask_weight or self.warp_weight) and not self.model.motion:
            problems.append("flow_weight, mask_weight and warp_weight need the motion output (--motion)")
        if self.max_beta < 0:
            problems.append(f"max_beta must be >= 0, got {self.max_beta}")
        if not 0 <= self.tfr_lower_bound <= self.tfr <= 1:
            problems.append(f"need 0 <= tfr_lower_bound <= tfr <= 1, got {self.tfr_lower_bound}, {self.tfr}")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    @property
    def needs_targets(self) -> bool:
        """Whether the run trains on the simulator's labels and flow (arm, flow or mask loss, moving windows)."""
        return bool(self.arm_weight or self.flow_weight or self.mask_weight or self.moving_windows)

    @property
    def seq_len(self) -> int:
        """Frames per training sequence, n_past + n_future."""
        return self.model.n_past + self.n_future

    def seq_len_at(self, epoch: int) -> int:
        """Frames per training sequence in (0-based) ``epoch`` under the horizon curriculum."""
        if self.n_future_start is None or self.curriculum_epochs == 0:
            return self.seq_len
        frac = min(1.0, epoch / self.curriculum_epochs)
        n = round(self.n_future_start + frac * (self.n_future - self.n_future_start))
        return self.model.n_past + n

    @property
    def val_seq_len(self) -> int:
        """Frames per validation sequence, n_past + val_n_future."""
        return self.model.n_past + self.val_n_future

    @property
    def total_steps(self) -> int:
        """Optimiser steps in the whole run."""
        return self.epochs * self.epoch_size

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some top-level fields changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Inverse of `bair_world.training.configcli.to_dict` (as stored in a run's train_config.json)."""
        data = dict(data)
        model = ModelConfig.from_dict(data.pop("model"))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}")
        for key in ("data_root", "log_dir", "resume", "init_from"):
            if data.get(key) is not None:
                data[key] = Path(data[key])
        for key in ("grad_clip", "max_minutes"):
            if data.get(key) is not None:
                data[key] = float(data[key])
        return cls(model=model, **data)

    def save(self, run_dir: str | Path) -> None:
        """Write this config (without the resume pointer) as ``run_dir/train_config.json``, atomically."""
        data = to_dict(self.replace(resume=None))
        atomic_write_bytes(Path(run_dir) / CONFIG_FILE, json.dumps(data, indent=2).encode())

    @classmethod
    def load(cls, run_dir: str | Path) -> "TrainConfig":
        """The config a run folder was started with (its train_config.json).

        Raises:
            RunFolderError: the file is missing (not a run folder) or holds a bad config (names the file).
        """
        path = Path(run_dir) / CONFIG_FILE
        if not path.is_file():
            raise RunFolderError(f"{path}: missing: not a train.py run folder, nothing to resume")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise RunFolderError(f"{path}: unreadable run config ({e})") from None
