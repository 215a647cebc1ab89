"""Data for a training run: where it lives, condition statistics, the epoch sampler, the train loader,
random crops, the validation set."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from bair_world.data import Batch, DataError, collate
from bair_world.data.bair_folder import ACTIONS_FILE, POSITIONS_FILE, BairFolderDataset, read_table
from bair_world.data.batch import ACTION_DIM, POSITION_DIM, cond_of, unit_frames
from bair_world.data.default_data import default_data_root, default_dataset_root
from bair_world.data.flow import flow_pixels
from bair_world.data.open import open_dataset
from bair_world.data.packed import PackedDataset
from bair_world.motion_diagnostics import MOVING_PX
from bair_world.sim.render import LABEL_OBJECTS
from bair_world.training.config import TrainConfig
from bair_world.training.distributed import DistInfo

STATS_MAX_SEQUENCES = 2000  # condition statistics from at most this many training sequences (CSV only)


#: Sequences per split of the quick-trial dataset (``--quick``): the first sequences of the full
#: default's splits (sequence seeds depend on (seed, split, index) only), no test split.
QUICK_COUNTS = {"train": 512, "validate": 64, "test": 0}


def resolve_data_root(cfg: TrainConfig) -> Path:
    """The dataset folder: ``cfg.data_root``, or the embedded synthetic data (generated on first use):
    the quick-trial set (`QUICK_COUNTS`) with ``cfg.quick``, else the full default."""
    if cfg.data_root is not None and not Path(cfg.data_root).is_dir():
        raise DataError(cfg.data_root, "data root does not exist (expected train/ and validate/ inside)")
    if cfg.data_root is None and cfg.quick:
        return Path(default_dataset_root(counts=dict(QUICK_COUNTS), progress=cfg.progress))
    return Path(default_data_root(cfg.data_root, progress=cfg.progress))


def condition_stats(dataset: BairFolderDataset | PackedDataset,
                    max_sequences: int = STATS_MAX_SEQUENCES) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std (7,) of cond = concat(action, position) over the training split (no frames read).

    Sequences are taken evenly spaced over the split when it holds more than ``max_sequences``;
    each contributes all its steps.
    """
    picked = np.arange(len(dataset))
    if len(picked) > max_sequences:
        picked = np.linspace(0, len(picked) - 1, max_sequences).round().astype(int)
    if isinstance(dataset, PackedDataset):
        data = dataset.data
        conds = cond_of(data.actions[picked], data.positions[picked], np.float64).reshape(-1, 7)  # (N, T, 7) -> (N*T, 7)
        if not np.isfinite(conds).all():
            raise DataError(dataset.root / dataset.split, "packed actions/positions contain NaN or inf")
    else:  # read_table names the file (and row) of a bad or non-finite value
        conds = np.concatenate([_csv_conds(dataset.paths[i]) for i in picked])  # (sum T, 7)
    conds = conds.astype(np.float64)
    return torch.from_numpy(conds.mean(0)).float(), torch.from_numpy(conds.std(0)).float()


def _csv_conds(seq: Path) -> np.ndarray:
    """(T, 7) conds of one folder-layout sequence, from its CSV files only."""
    actions = read_table(seq / ACTIONS_FILE, ACTION_DIM).astype(np.float64)
    positions = read_table(seq / POSITIONS_FILE, POSITION_DIM).astype(np.float64)
    n = min(len(actions), len(positions))
    return cond_of(actions[:n], positions[:n], np.float64)  # (T, 4) + (T, 3) -> (T, 7)


class EpochSampler(Sampler[int]):
    """Random sequence indices for one epoch, a pure function of (seed, epoch), sharded over ranks.

    An epoch draws ``num_samples * world_size`` indices by concatenating random permutations of the
    dataset (each sequence seen about equally often), and rank r takes every world_size-th index
    from position r, like `torch.utils.data.DistributedSampler`. Because the order depends only on
    the seed and `set_epoch`, a resumed run draws exactly the batches the uninterrupted run would;
    ``set_epoch(epoch, start)`` skips the first ``start`` indices (resuming inside an epoch).

    Args:
        dataset_len: sequences in the split.
        num_samples: indices per rank per epoch (epoch_size * batch_size).
        seed: the run's seed.
        rank: this process's rank.
        world_size: number of processes.
    """

    def __init__(self, dataset_len: int, num_samples: int, seed: int, rank: int = 0, world_size: int = 1):
        if dataset_len < 1:
            raise ValueError("EpochSampler: the dataset is empty")
        self.dataset_len, self.num_samples = dataset_len, num_samples
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Draw the order of ``epoch``, beginning at its ``start``-th index (this rank's count)."""
        if not 0 <= start <= self.num_samples:
            raise ValueError(f"EpochSampler: start {start} outside [0, {self.num_samples}]")
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.num_samples - self.start

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        total = self.num_samples * self.world_size
        perms = [torch.randperm(self.dataset_len, generator=g) for _ in range(math.ceil(total / self.dataset_len))]
        order = torch.cat(perms)[:total]
        return iter(order[self.rank::self.world_size][self.start:].tolist())


def make_train_loader(dataset: BairFolderDataset | PackedDataset, cfg: TrainConfig, info: DistInfo,
                      device: torch.device) -> tuple[DataLoader, EpochSampler]:
    """The training DataLoader (epoch_size batches per epoch per rank) and its sampler."""
    sampler = EpochSampler(len(dataset), cfg.epoch_size * cfg.batch_size, cfg.seed, info.rank, info.world_size)
    loader = DataLoader(
        _CarryDataErrors(dataset) if cfg.num_workers > 0 else dataset, batch_size=cfg.batch_size, sampler=sampler,
        collate_fn=collate_checked, drop_last=True, num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
        persistent_workers=cfg.num_workers > 0,
    )
    return loader, sampler


class _Failed:
    """A `DataError` crossing from a DataLoader worker as data: torch re-raises a worker's exception
    as a RuntimeError holding the whole worker traceback, so it travels as a value instead."""

    def __init__(self, error: DataError):
        self.path, self.problem = error.path, error.problem


class _CarryDataErrors(torch.utils.data.Dataset):
    """``dataset`` whose DataErrors are returned as `_Failed` items (collated as-is, see `batches`)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        try:
            return self.dataset[index]
        except DataError as e:
            return _Failed(e)


def collate_checked(items: list):
    """`collate`, except that a `_Failed` item yields itself (raised again by `batches`)."""
    failed = next((item for item in items if isinstance(item, _Failed)), None)
    return failed if failed is not None else collate(items)


def batches(loader_iter):
    """Iterate a train loader, raising a worker's DataError (naming the file) in this process."""
    for batch in loader_iter:
        if isinstance(batch, _Failed):
            raise DataError(batch.path, batch.problem)
        yield batch


def random_crop(batch: Batch, length: int, rng, moving_windows: float = 0.0) -> tuple[torch.Tensor, ...]:
    """Per-sequence random windows of ``length`` steps: (frames (B, L, 3, 64, 64), conds (B, L, 7),
    labels (B, L, 64, 64) or None, flow (B, L, 2, 64, 64) or None), the last two when the batch has them.

    Args:
        batch: sequences of T >= length steps.
        length: window length.
        rng: a ``random.Random`` (the loop's seeded generator), or None for the leading window.
        moving_windows: oversample windows where objects move (`window_weights`; needs the batch's
            labels and flow); 0 draws offsets uniformly.
    """
    parts = (batch.frames, batch.cond, batch.labels, batch.flow)
    b, t = batch.frames.shape[:2]
    if t < length:
        raise ValueError(f"training sequences have {t} steps, n_past + n_future needs {length}")
    if rng is None or t == length:
        return tuple(None if x is None else x[:, :length] for x in parts)
    if moving_windows:
        weights = window_weights(batch.labels, batch.flow, length, moving_windows).tolist()
        offsets = torch.tensor([rng.choices(range(t - length + 1), weights=w)[0] for w in weights])
    else:
        offsets = torch.tensor([rng.randrange(t - length + 1) for _ in range(b)])
    idx = offsets[:, None] + torch.arange(length)[None]  # (B, L) time indices
    rows = torch.arange(b)[:, None]  # (B, 1)
    return tuple(None if x is None else x[rows, idx] for x in parts)  # (B, T, ...) -> (B, L, ...)


def device_window(batch: Batch, length: int, rng, moving_windows: float, device: torch.device
                  ) -> tuple[torch.Tensor, ...]:
    """The training step's window: `random_crop` of a stored batch (uint8 frames, int8 flow), moved to
    ``device`` and converted there, so only the window's frames become float and uint8 crosses to
    the device: (frames float (B, L, 3, 64, 64) in [0, 1], conds (B, L, 7), labels (B, L, 64, 64) or
    None, flow float32 (B, L, 2, 64, 64) pixels or None)."""
    window = random_crop(batch, length, rng, moving_windows)
    frames, conds, labels, flow = (None if x is None else x.to(device, non_blocking=True) for x in window)
    return unit_frames(frames), conds, labels, None if flow is None else flow_pixels(flow)


def window_weights(labels: torch.Tensor, flow: torch.Tensor, length: int, strength: float) -> torch.Tensor:
    """(B, T - length + 1) sampling weights of each window offset: 1 + strength x (moving object pixels
    in the window's predicted frames / their mean over the sequence's offsets); an object pixel moves as
    in the motion diagnostics (true flow above `bair_world.motion_diagnostics.MOVING_PX`).

    Args:
        labels: (B, T, H, W) region labels; flow: (B, T, 2, H, W) true flow (frame t from t-1), stored
            int8 or pixels.
    """
    moving = ((labels == LABEL_OBJECTS) & (flow_pixels(flow).norm(dim=2) > MOVING_PX)).sum((-2, -1)).double()  # (B, T)
    sums = moving[:, 1:].cumsum(1)  # (B, T-1): moving pixels in frames 1..t
    sums = torch.cat([sums.new_zeros(sums.shape[0], 1), sums], 1)  # (B, T)
    per_window = sums[:, length - 1:] - sums[:, :-(length - 1)]  # (B, T-L+1): frames offset+1 .. offset+L-1
    mean = per_window.mean(1, keepdim=True).clamp_min(1e-9)
    return 1.0 + strength * per_window / mean


def load_validation(root: Path, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``cfg.val_sequences`` validation sequences (all if 0), cut to n_past + val_n_future:
    (frames (N, T, 3, 64, 64), conds (N, T, 7)) on CPU."""
    dataset = open_dataset(root, "validate", seq_len=cfg.val_seq_len)
    if len(dataset) == 0:
        raise DataError(Path(root) / "validate", "the validation split holds no sequences")
    n = len(dataset) if cfg.val_sequences == 0 else min(cfg.val_sequences, len(dataset))
    batch = collate([dataset[i] for i in range(n)])
    return batch.frames, batch.cond
