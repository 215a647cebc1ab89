"""A state readout: the objects' and the arm's positions read from a world model's latent code.

`StateReadout` maps a frozen SVG model's codes to the scene state in metres. Two heads, one per kind
of code, because the two live in different spaces:

* ``"encoded"``: the encoder's code h(x_t) of a real frame (a goal image, an observed frame);
* ``"predicted"``: the frame predictor's output along an imagined rollout, the code the decoder
  turns into x_{t+1} (`bair_world.world_model.WorldModel.step_latent`): the state the model imagines
  after an action, readable without decoding pixels.

Each head is a small MLP giving, per object slot, a presence logit and the object's (x, y), plus the
arm's (x, y, z). Slots are the pushing world's palette colours (`bair_world.data.poses`): a colour is
what a frame shows, so "where is the orange object" is learnable where "object 2" is not. Targets are
the synthetic data's recorded poses (`poses.npz` / ``poses.npy``) and end-effector positions; real
BAIR data has no poses and trains no readout. Training and evaluation: `bair_world.readout_train`.

A readout is saved as ONE safetensors file (weights + a JSON header: config, slot meaning, the
checkpoint's ``model_sha256`` it was trained on, its metrics), written atomically; `load_readout`
refuses a readout trained on another model than the one it is used with.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from bair_world.data.poses import POSE_SLOTS

READOUT_FILE = "readout.safetensors"
FORMAT, FORMAT_VERSION = "bair-world-readout", 1
KINDS = ("encoded", "predicted")


@dataclass(frozen=True)
class ReadoutConfig:
    """Architecture of a `StateReadout`."""

    g_dim: int = 64
    """Width of the model's codes (its ``ModelConfig.g_dim``)."""
    hidden: int = 256
    """Hidden units of each head's two hidden layers."""
    slots: int = POSE_SLOTS
    """Object slots (palette colours of the pushing world)."""

    def __post_init__(self):
        if self.g_dim < 1 or self.hidden < 1 or self.slots < 1:
            raise ValueError(f"ReadoutConfig needs g_dim, hidden, slots >= 1, got {self}")


@dataclass
class State:
    """What a readout reads (batched over leading dims ...).

    Attributes:
        objects: (..., S, 2) object centres x, y in metres.
        present: (..., S) logits that the slot's object is in the scene.
        arm: (..., 3) end-effector x, y, z in metres.
    """

    objects: torch.Tensor
    present: torch.Tensor
    arm: torch.Tensor


def _mlp(g_dim: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(g_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                         nn.Linear(hidden, out))


class StateReadout(nn.Module):
    """Codes (..., g_dim) -> `State` in metres; ``kind`` picks the head ("encoded" or "predicted").

    Codes and targets are standardised with the training data's statistics (``code_mean``/``code_std``
    per kind, ``xy_mean``/``xy_std`` of object centres, ``arm_mean``/``arm_std``), stored as buffers so
    a loaded readout takes raw codes and answers in metres.
    """

    def __init__(self, cfg: ReadoutConfig):
        super().__init__()
        self.cfg = cfg
        out = cfg.slots * 3 + 3  # per slot: presence logit, x, y; then the arm's x, y, z
        self.heads = nn.ModuleDict({k: _mlp(cfg.g_dim, cfg.hidden, out) for k in KINDS})
        self.register_buffer("code_mean", torch.zeros(len(KINDS), cfg.g_dim))
        self.register_buffer("code_std", torch.ones(len(KINDS), cfg.g_dim))
        self.register_buffer("xy_mean", torch.tensor([0.6, -0.05]))
        self.register_buffer("xy_std", torch.tensor([0.1, 0.12]))
        self.register_buffer("arm_mean", torch.tensor([0.6, -0.05, 0.25]))
        self.register_buffer("arm_std", torch.tensor([0.1, 0.12, 0.03]))

    def forward(self, codes: torch.Tensor, kind: str = "encoded") -> State:
        if kind not in KINDS:
            raise ValueError(f"readout kind must be one of {KINDS}, got {kind!r}")
        if codes.shape[-1] != self.cfg.g_dim:
            raise ValueError(f"codes must be (..., {self.cfg.g_dim}), got {tuple(codes.shape)}")
        lead, s = codes.shape[:-1], self.cfg.slots
        k = KINDS.index(kind)
        raw = self.heads[kind]((codes.float() - self.code_mean[k]) / self.code_std[k])  # (..., S*3 + 3)
        slots = raw[..., : s * 3].reshape(*lead, s, 3)  # (..., S*3) -> (..., S, 3)
        objects = slots[..., 1:] * self.xy_std + self.xy_mean
        arm = raw[..., s * 3:] * self.arm_std + self.arm_mean
        return State(objects, slots[..., 0], arm)

    def fit_statistics(self, poses: torch.Tensor, arm: torch.Tensor, codes: dict[str, torch.Tensor]) -> None:
        """Standardise with the data's statistics: poses (N, S, 3) with NaN rows, arm (N, 3), codes
        {kind: (M, g_dim)} (a kind not given keeps mean 0, std 1)."""
        xy = poses[..., :2].reshape(-1, 2)
        xy = xy[torch.isfinite(xy).all(-1)]  # (M, 2) present objects
        with torch.no_grad():
            for kind, h in codes.items():
                self.code_mean[KINDS.index(kind)] = h.mean(0)
                self.code_std[KINDS.index(kind)] = h.std(0).clamp_min(1e-4)
            self.xy_mean.copy_(xy.mean(0))
            self.xy_std.copy_(xy.std(0).clamp_min(1e-3))
            self.arm_mean.copy_(arm.mean(0))
            self.arm_std.copy_(arm.std(0).clamp_min(1e-3))

    def loss(self, codes: torch.Tensor, poses: torch.Tensor, arm: torch.Tensor, kind: str) -> dict[str, torch.Tensor]:
        """Training loss of codes (N, g) against poses (N, S, 3) (NaN rows: absent) and arm (N, 3).

        Returns:
            ``loss`` (presence BCE + standardised MSE of present objects' xy + the arm's),
            ``objects_m``/``arm_m`` the mean position errors in metres (for logs).
        """
        out = self(codes, kind)
        present = torch.isfinite(poses[..., 0])  # (N, S)
        target_xy = torch.nan_to_num(poses[..., :2])
        err = ((out.objects - target_xy) / self.xy_std).pow(2).sum(-1)  # (N, S)
        obj = (err * present).sum() / present.sum().clamp_min(1)
        arm_err = ((out.arm - arm) / self.arm_std).pow(2).sum(-1).mean()
        bce = F.binary_cross_entropy_with_logits(out.present, present.float())
        with torch.no_grad():
            dist = (out.objects - target_xy).norm(dim=-1)
            objects_m = (dist * present).sum() / present.sum().clamp_min(1)
            arm_m = (out.arm - arm).norm(dim=-1).mean()
        return {"loss": obj + arm_err + 0.1 * bce, "objects_m": objects_m, "arm_m": arm_m}


def readout_path(path: str | Path) -> Path:
    """The readout file of ``path``: the file itself, or ``<folder>/readout.safetensors`` (a checkpoint folder)."""
    path = Path(path)
    return path / READOUT_FILE if path.is_dir() else path


def save_readout(path: str | Path, readout: StateReadout, info: dict) -> Path:
    """Write ``readout`` (and ``info``: model_sha256, data, metrics...) as one safetensors file, atomically.

    Args:
        path: a file, or a folder (a checkpoint's) to hold ``readout.safetensors``.
    """
    from safetensors.torch import save

    from bair_world.io import atomic_write_bytes

    file = readout_path(path)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": asdict(readout.cfg), **info}
    tensors = {k: v.detach().cpu().contiguous() for k, v in readout.state_dict().items()}
    file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(file, save(tensors, metadata={"readout": json.dumps(header, default=float)}))
    return file


class ReadoutError(ValueError):
    """A readout file is missing, malformed or made for another model; names the file."""

    def __init__(self, path: Path, problem: str):
        self.path = Path(path)
        super().__init__(f"{self.path}: {problem}")


def load_readout(path: str | Path, model_sha256: str | None = None) -> tuple[StateReadout, dict]:
    """Load a readout saved by `save_readout` -> (readout in eval mode, its header).

    Args:
        path: the file, or the folder holding ``readout.safetensors``.
        model_sha256: the model it will read (its checkpoint's ``model_sha256``): a readout trained on
            another model is refused (its codes mean something else). None: not checked.

    Raises:
        ReadoutError: naming the file: missing, unreadable, not a readout, another model's.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    file = readout_path(path)
    if not file.is_file():
        raise ReadoutError(file, "missing: train one with `bair-world readout train --checkpoint CKPT`")
    try:
        data = file.read_bytes()
        tensors = load(data)
        header = json.loads(_metadata(data).get("readout", "{}"))
    except (OSError, ValueError, SafetensorError) as exc:
        raise ReadoutError(file, f"unreadable readout ({type(exc).__name__}: {str(exc)[:200]})") from None
    if header.get("format") != FORMAT or header.get("format_version") != FORMAT_VERSION:
        raise ReadoutError(file, f"not a {FORMAT} v{FORMAT_VERSION} file")
    want = header.get("model_sha256")
    if model_sha256 is not None and want is not None and want != model_sha256:
        raise ReadoutError(file, f"trained on model {want[:12]}, not on this checkpoint's {model_sha256[:12]}: "
                                 "retrain it on this checkpoint")
    try:
        readout = StateReadout(ReadoutConfig(**header["config"]))
        readout.load_state_dict(tensors)
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise ReadoutError(file, f"weights do not fit the recorded config ({str(exc)[:200]})") from None
    return readout.eval(), header


def _metadata(data: bytes) -> dict:
    """The ``__metadata__`` of a safetensors file's bytes."""
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]).get("__metadata__") or {}
