"""Building a run's model: fresh (seeded), fine-tuned from a checkpoint (``--init-from``), on its device."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from bair_world.checkpoint import load_checkpoint
from bair_world.models import SVG
from bair_world.models.motion import MOTION_HEAD_BIAS
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


ADDABLE = ("motion", "spatial_cond", "context_mask")
"""Model options a run may add on top of an --init-from checkpoint without them: their new
weights start so that the model computes what the checkpoint did (zero flow and mask-logit
weights, zero weights on the new decoder input channels)."""


REPLACEABLE = ("flow_head", "max_flow")
"""Model options a run may change on top of an --init-from checkpoint: a new flow head starts
with its fresh initialisation (`bair_world.models.motion`)."""


def init_from(model: SVG, path: Path) -> None:
    """Load a checkpoint's weights and normalisation into ``model`` to fine-tune it: the same
    architecture, optionally with `ADDABLE` options switched on."""
    source, info = load_checkpoint(path)
    added = [name for name in ADDABLE if getattr(model.cfg, name) and not getattr(source.cfg, name)]
    changeable = {name: getattr(model.cfg, name) for name in ADDABLE + REPLACEABLE}
    if source.cfg.replace(**changeable) != model.cfg or any(
            getattr(source.cfg, name) and not getattr(model.cfg, name) for name in ADDABLE):
        raise ValueError(f"--init-from {path}: its model {info.get('model')} differs from this run's "
                         f"{dataclasses.asdict(model.cfg)}; pass the same model options (new ones may only add "
                         f"{', '.join(ADDABLE)} or change {', '.join(REPLACEABLE)})")
    weights = source.state_dict()
    if source.cfg.flow_head != model.cfg.flow_head:  # another flow head: the motion head starts afresh
        weights = {k: v for k, v in weights.items() if not k.startswith("motion_head.")}
        added.append(f"flow_head {model.cfg.flow_head!r} (new motion head)")
    grown = load_grown(model, weights, path)
    print(f"[train] initialised from {path} (step {info.get('step')})"
          + (f", adding {', '.join(added)} ({len(grown)} tensors grown or new)" if added else ""), flush=True)


def load_grown(model: SVG, weights: dict[str, torch.Tensor], path: Path) -> list[str]:
    """Copy ``weights`` into ``model``; a tensor of the model that is larger along some dims (new
    input channels, new mask outputs) gets the old values in its leading slice and zeros elsewhere,
    and the motion head's new outputs their initial bias; tensors only the model has (a new motion
    head) keep their fresh initialisation. Returns the names of tensors grown or new.

    Raises:
        ValueError: a tensor that does not fit (smaller, or another rank), or one the model lacks.
    """
    own = model.state_dict()
    unexpected = sorted(set(weights) - set(own))
    if unexpected:
        raise ValueError(f"--init-from {path}: weights do not fit (unexpected {unexpected[:3]})")
    changed = sorted(set(own) - set(weights))
    if any(not k.startswith(("motion_head.", "flow_pyramid.")) for k in changed):
        raise ValueError(f"--init-from {path}: weights do not fit (missing {changed[:3]})")
    head = model.motion_head_output()
    head_bias = None if head is None else head.bias
    with torch.no_grad():
        for name, value in weights.items():
            target = own[name]
            if target.shape == value.shape:
                target.copy_(value)
                continue
            if value.dim() != target.dim() or any(a > b for a, b in zip(value.shape, target.shape)):
                raise ValueError(f"--init-from {path}: {name} {tuple(value.shape)} does not fit {tuple(target.shape)}")
            fresh = torch.zeros_like(target)
            if head_bias is not None and target.data_ptr() == head_bias.data_ptr():  # the motion head's output bias: new masks start at ~0
                fresh.copy_(torch.tensor(MOTION_HEAD_BIAS[:target.numel()]))
            fresh[tuple(slice(0, n) for n in value.shape)] = value
            target.copy_(fresh)
            changed.append(name)
    return changed


def to_device(model: SVG, optimizer: torch.optim.Optimizer, cfg: TrainConfig, device: torch.device) -> None:
    """Move the model and the optimiser's state to ``device`` (channels-last on CUDA if asked)."""
    model.to(device)
    for group in optimizer.state.values():  # optimiser state follows the parameters' device
        for k, v in group.items():
            if torch.is_tensor(v) and k != "step":
                group[k] = v.to(device)
    if device.type == "cuda" and cfg.channels_last:
        model.to(memory_format=torch.channels_last)
