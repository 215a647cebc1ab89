"""Building a run's model: fresh (seeded), fine-tuned from a checkpoint (``--init-from``), on its device."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from bair_world.checkpoint import load_checkpoint
from bair_world.models import SVG
from bair_world.training.config import TrainConfig


def build_model(cfg: TrainConfig, cond_stats: tuple[torch.Tensor, torch.Tensor]) -> SVG:
    """A new model seeded with ``cfg.seed``, normalising conds with ``cond_stats`` (mean, std), and
    initialised from ``cfg.init_from`` when given (and not resuming)."""
    torch.manual_seed(cfg.seed)  # model initialisation
    model = SVG(cfg.model)
    model.set_normalisation(*cond_stats)
    if cfg.init_from is not None and cfg.resume is None:
        init_from(model, cfg.init_from)
    return model


def init_from(model: SVG, path: Path) -> None:
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


def to_device(model: SVG, optimizer: torch.optim.Optimizer, cfg: TrainConfig, device: torch.device) -> None:
    """Move the model and the optimiser's state to ``device`` (channels-last on CUDA if asked)."""
    model.to(device)
    for group in optimizer.state.values():  # optimiser state follows the parameters' device
        for k, v in group.items():
            if torch.is_tensor(v) and k != "step":
                group[k] = v.to(device)
    if device.type == "cuda" and cfg.channels_last:
        model.to(memory_format=torch.channels_last)
