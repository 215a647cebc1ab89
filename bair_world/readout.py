"""A state readout: the objects' and the arm's positions read from a world model's encoder features.

`StateReadout` maps the encoder's spatial skip features of a frame (`WorldModel.encode_skips`) to the
scene state in metres. It reads feature maps, not the 64-dim code h: with skip connections the SVG
decoder copies static content from the skips, so h need not hold where objects are (an MLP on h
predicted the mean: 16 cm). The head (per ``kind``, see below):

* the 32 px skip folded to 16 px (space to depth, lossless) beside the 16 px skip and two coordinate
  channels, a few convolutions at 16x16;
* per slot (and one for the arm) a heatmap and a sub-cell offset field: the position is the expected
  cell centre plus offset under the heatmap's softmax (`soft_argmax`), in frame pixels;
* pixels to the table plane by a learned homography, initialised from the pushing world's nominal
  camera, times a per-frame correction predicted from the pooled features (the world jitters its
  camera per sequence: a fixed map alone is ~2 cm off);
* presence logits from the pooled features; the arm's (x, y, z) from its heatmap position and them.

Two heads, one per kind of frame: ``"encoded"`` reads real frames (a goal image, an observation),
``"predicted"`` the frames the model imagines (blurrier; the planner's imagined states are read from
the predicted frame's encoder features, which the model computes anyway at its next step). Slots are
the pushing world's palette colours (`bair_world.data.poses`): a colour is what a frame shows. Targets
are the synthetic data's recorded poses and end-effector positions; real BAIR data has no poses and
trains no readout. Training and evaluation: `bair_world.readout_train`.

A readout is saved as ONE safetensors file (weights + a JSON header: config, the checkpoint's
``model_sha256`` it was trained on, its metrics), written atomically; `load_readout` refuses a readout
trained on another model than the one it is used with, and files of an older format (version 1 read
the code h).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bair_world.data.poses import POSE_SLOTS

READOUT_FILE = "readout.safetensors"
FORMAT, FORMAT_VERSION = "bair-world-readout", 2
KINDS = ("encoded", "predicted")
#: Side of the frames read (pixels); heatmaps are 16x16 over it.
FRAME = 64
GRID = 16


@dataclass(frozen=True)
class ReadoutConfig:
    """Architecture of a `StateReadout`."""

    fine_channels: int = 32
    """Channels of the encoder's 32 px skip (stage 1; DCGAN width 0.5: 32)."""
    coarse_channels: int = 64
    """Channels of the encoder's 16 px skip (stage 2; DCGAN width 0.5: 64)."""
    hidden: int = 64
    """Channels of the head's convolutions (and width of its pooled-feature MLP)."""
    slots: int = POSE_SLOTS
    """Object slots (palette colours of the pushing world)."""

    def __post_init__(self):
        if min(self.fine_channels, self.coarse_channels, self.hidden, self.slots) < 1:
            raise ValueError(f"ReadoutConfig needs positive channels, hidden and slots, got {self}")


def config_for(skips, hidden: int = 64) -> ReadoutConfig:
    """The `ReadoutConfig` reading a model's encoder skips (`WorldModel.encode_skips` of some frames)."""
    by_size = {x.shape[-1]: x.shape[-3] for x in skips}
    if 2 * GRID not in by_size or GRID not in by_size:
        raise ValueError(f"the readout needs encoder skips of 32 and 16 px, got sizes {sorted(by_size)}")
    return ReadoutConfig(by_size[2 * GRID], by_size[GRID], hidden=hidden)


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


def soft_argmax(logits: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
    """Expected position under a spatial softmax, in frame pixels.

    Args:
        logits: (N, K, G, G) one heatmap per keypoint over a G x G grid covering the `FRAME`-pixel frame.
        offsets: (N, K, 2, G, G) sub-cell offsets (x, y) in cells added to each cell's centre, or None.

    Returns:
        (N, K, 2) (column, row) pixel coordinates: cell (i, j) has its centre at ((j + 0.5), (i + 0.5)) * FRAME / G.
    """
    n, k, g, _ = logits.shape
    centres = (torch.arange(g, dtype=logits.dtype, device=logits.device) + 0.5)  # (G,) in cells
    cx = centres.reshape(1, 1, 1, g).expand(n, k, g, g)
    cy = centres.reshape(1, 1, g, 1).expand(n, k, g, g)
    if offsets is not None:
        cx, cy = cx + offsets[:, :, 0], cy + offsets[:, :, 1]
    p = torch.softmax(logits.reshape(n, k, g * g), -1)  # (N, K, G*G)
    xy = torch.stack([(p * cx.reshape(n, k, -1)).sum(-1), (p * cy.reshape(n, k, -1)).sum(-1)], -1)  # (N, K, 2)
    return xy * (FRAME / g)


def nominal_projection() -> torch.Tensor:
    """(3, 4) world (x, y, z, 1) metres -> frame pixels (column, row, 1) (homogeneous) of the pushing world's
    un-jittered camera (`bair_world.sim.camera.jittered_camera` without noise)."""
    from bair_world.sim.camera import Camera
    from bair_world.sim.config import SimConfig

    cfg = SimConfig()
    size = cfg.image_size * cfg.render_scale
    cam = Camera(np.array([1.80, -0.05, 1.20]), np.array([0.68, -0.05, 0.19]), size * 2.3, size)
    return torch.tensor(np.diag([1.0 / cfg.render_scale, 1.0 / cfg.render_scale, 1.0]) @ cam.matrix, dtype=torch.float32)


def nominal_homography() -> torch.Tensor:
    """(3, 3) frame pixels (column, row, 1) -> table-plane (x, y, 1) metres of `nominal_projection`."""
    from bair_world.sim.config import SimConfig

    m = nominal_projection().double()
    h = torch.linalg.inv(torch.stack([m[:, 0], m[:, 1], m[:, 2] * SimConfig().table_z + m[:, 3]], 1))
    return (h / h[2, 2]).float()


def heatmap_target(points: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Soft one-hot targets (N, K, G*G) of points (N, K, 2) in frame pixels: a Gaussian of ``sigma`` cells."""
    g = GRID
    centres = (torch.arange(g, dtype=points.dtype) + 0.5) * (FRAME / g)  # (G,) pixels
    cells = points.unsqueeze(-2) / (FRAME / g)  # (N, K, 1, 2) in cells
    gx = (centres / (FRAME / g)).reshape(1, 1, 1, g).expand(1, 1, g, g).reshape(1, 1, -1)
    gy = (centres / (FRAME / g)).reshape(1, 1, g, 1).expand(1, 1, g, g).reshape(1, 1, -1)
    d2 = (gx - cells[..., 0]) ** 2 + (gy - cells[..., 1]) ** 2  # (N, K, G*G)
    return torch.softmax(-d2 / (2 * sigma ** 2), -1)


def apply_homography(h: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """h (N, 3, 3) applied to points xy (N, K, 2) -> (N, K, 2)."""
    hom = torch.cat([xy, torch.ones_like(xy[..., :1])], -1) @ h.transpose(1, 2)  # (N, K, 3)
    return hom[..., :2] / hom[..., 2:].clamp_min(1e-6)


#: Unsupervised landmark keypoints per head: where they land in a frame tells the camera's jitter.
LANDMARKS = 4


class _Head(nn.Module):
    """Encoder skips -> keypoint pixels, pooled features, heatmap logits (see the module docstring)."""

    def __init__(self, cfg: ReadoutConfig):
        super().__init__()
        c, k = cfg.hidden, cfg.slots + 1 + LANDMARKS  # the object slots, the arm, the landmarks
        self.k, self.slots = k, cfg.slots
        self.trunk = nn.Sequential(
            nn.Conv2d(4 * cfg.fine_channels + cfg.coarse_channels + 2, c, 1), nn.SiLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1), nn.SiLU())
        self.maps = nn.Conv2d(c, 3 * k, 1)  # per keypoint: logit, offset x, offset y
        self.pooled = nn.Sequential(nn.Linear(2 * c + 2 * LANDMARKS, c), nn.SiLU())
        self.present = nn.Linear(c, cfg.slots)
        self.peak = nn.Parameter(torch.ones(cfg.slots))  # presence from each slot's heatmap peak
        self.camera = nn.Linear(c, 8)  # the per-frame homography correction
        self.arm = nn.Sequential(nn.Linear(2 * c + 2, c), nn.SiLU(), nn.Linear(c, 3))
        for layer in (self.camera, self.arm[-1]):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor):
        n, _, g, _ = coarse.shape
        ramp = torch.linspace(-1.0, 1.0, g, dtype=coarse.dtype, device=coarse.device)
        coords = torch.stack([ramp.expand(g, g), ramp.reshape(g, 1).expand(g, g)]).expand(n, 2, g, g)
        x = torch.cat([F.pixel_unshuffle(fine, 2), coarse, coords], 1)  # (N, 4*C1 + C2 + 2, G, G)
        feat = self.trunk(x)  # (N, c, G, G)
        maps = self.maps(feat).reshape(n, self.k, 3, g, g)  # (N, 3K, G, G) -> (N, K, 3, G, G)
        logits = maps[:, :, 0]  # (N, K, G, G)
        pixels = soft_argmax(logits, torch.tanh(maps[:, :, 1:]))  # (N, K, 2); offsets within a cell
        landmarks = (pixels[:, self.slots + 1:] - FRAME / 2) / (FRAME / 2)  # (N, L, 2) in [-1, 1]
        pooled = self.pooled(torch.cat([feat.mean((2, 3)), feat.amax((2, 3)), landmarks.flatten(1)], 1))  # (N, c)
        flat = logits.flatten(2)  # (N, K, G*G)
        peaks = (flat.amax(-1) - flat.mean(-1))[:, : self.slots]  # (N, S)
        present = self.present(pooled) + self.peak * peaks
        # the arm: its keypoint's position and the features under it (the gripper's size tells its height)
        attend = torch.softmax(flat[:, self.slots], -1)  # (N, G*G)
        under = (feat.flatten(2) * attend[:, None]).sum(-1)  # (N, c)
        arm_in = torch.cat([pooled, under, (pixels[:, self.slots] - FRAME / 2) / (FRAME / 2)], 1)
        return pixels[:, : self.slots + 1], pooled, present, arm_in, logits[:, : self.slots + 1]


class StateReadout(nn.Module):
    """Encoder skips -> `State` in metres; ``kind`` picks the head ("encoded" or "predicted").

    Input: the encoder's stage outputs of frames (finest first, `WorldModel.encode_skips`; the 32 px and
    16 px ones are read), leading batch dims (...) folded as (N, ...). ``arm_mean``/``arm_std`` (buffers)
    standardise the arm's regression.
    """

    def __init__(self, cfg: ReadoutConfig):
        super().__init__()
        self.cfg = cfg
        self.heads = nn.ModuleDict({k: _Head(cfg) for k in KINDS})
        self.homography = nn.Parameter(nominal_homography())  # (3, 3) shared: one table, one camera model
        self.register_buffer("projection", nominal_projection(), persistent=False)
        half = FRAME / 2
        self.register_buffer("centre", torch.tensor([[1 / half, 0, -1.0], [0, 1 / half, -1.0], [0, 0, 1.0]]),
                             persistent=False)
        self.register_buffer("uncentre", torch.linalg.inv(self.centre), persistent=False)
        self._logits: torch.Tensor | None = None
        self.register_buffer("arm_mean", torch.tensor([0.6, -0.05, 0.22]))
        self.register_buffer("arm_std", torch.tensor([0.11, 0.14, 0.03]))

    projection_z = 0.19  # the table's height (`bair_world.sim.config.SimConfig.table_z`)
    heat_weight = 1.0  # the heatmap term's weight in `loss`

    def forward(self, skips, kind: str = "encoded") -> State:
        if kind not in KINDS:
            raise ValueError(f"readout kind must be one of {KINDS}, got {kind!r}")
        by_size = {x.shape[-1]: x for x in skips if x.dim() >= 4}
        shapes = [tuple(x.shape) for x in skips]
        fine, coarse = by_size.get(2 * GRID), by_size.get(GRID)
        want = ((self.cfg.fine_channels, 2 * GRID), (self.cfg.coarse_channels, GRID))
        for x, (c, g) in zip((fine, coarse), want):
            if x is None or tuple(x.shape[-3:]) != (c, g, g):
                raise ValueError(f"the readout reads the encoder's skips of (..., {want[0][0]}, 32, 32) and (..., "
                                 f"{want[1][0]}, 16, 16), got {shapes} (pass WorldModel.encode_skips of 64x64 frames)")
        fine, coarse = fine.float(), coarse.float()
        lead = fine.shape[:-3]
        fine, coarse = fine.reshape(-1, *fine.shape[-3:]), coarse.reshape(-1, *coarse.shape[-3:])  # (N, C, H, W)
        head = self.heads[kind]
        pixels, pooled, present, arm_in, logits = head(fine, coarse)  # (N, S+1, 2), (N, c), (N, S), ., (N, S+1, G, G)
        self._logits = logits  # the loss's heatmap term reads them
        s = self.cfg.slots
        delta = torch.cat([head.camera(pooled), pooled.new_zeros(len(pooled), 1)], 1).reshape(-1, 3, 3) * 0.1
        # corrected in centred pixels ((p - 32) / 32: a translation of 0.1 is 1.6 px), then to the table
        h = self.homography @ self.uncentre @ (torch.eye(3, device=pooled.device) + delta) @ self.centre
        objects = apply_homography(h, pixels[:, :s])  # (N, S, 2)
        arm = head.arm(arm_in) * self.arm_std + self.arm_mean
        return State(objects.reshape(*lead, s, 2), present.reshape(*lead, s), arm.reshape(*lead, 3))

    def fit_statistics(self, arm: torch.Tensor) -> None:
        """Standardise the arm's regression with the data's statistics: arm (N, 3) metres."""
        with torch.no_grad():
            self.arm_mean.copy_(arm.mean(0))
            self.arm_std.copy_(arm.std(0).clamp_min(1e-3))

    def loss(self, skips, poses: torch.Tensor, arm: torch.Tensor, kind: str) -> dict[str, torch.Tensor]:
        """Training loss of skips (of N frames) against poses (N, S, 3) (NaN rows: absent) and arm (N, 3).

        Returns:
            ``loss`` (presence BCE + squared centimetres of present objects' xy + the arm's standardised
            squared error), ``objects_m``/``arm_m`` the mean position errors in metres (for logs).
        """
        out = self(skips, kind)
        present = torch.isfinite(poses[..., 0])  # (N, S)
        target_xy = torch.nan_to_num(poses[..., :2])
        err = ((out.objects - target_xy) * 100).pow(2).sum(-1)  # (N, S) cm^2
        obj = (F.smooth_l1_loss(err.sqrt().clamp_min(1e-6), torch.zeros_like(err), reduction="none", beta=1.0)
               * present).sum() / present.sum().clamp_min(1)
        arm_err = ((out.arm - arm) / self.arm_std).pow(2).sum(-1).mean()
        bce = F.binary_cross_entropy_with_logits(out.present, present.float())
        # heatmaps towards the nominal camera's projection of the truth (a few px off under camera jitter;
        # the metric terms correct it): localises early, the metres loss alone learns slowly
        z = torch.cat([poses.new_full((*poses.shape[:-1], 1), self.projection_z), arm[:, None, 2:]], 1)  # (N, S+1, 1)
        world = torch.cat([torch.cat([target_xy, arm[:, None, :2]], 1), z, torch.ones_like(z)], -1)  # (N, S+1, 4)
        hom = world @ self.projection.T  # (N, S+1, 3)
        logp = torch.log_softmax(self._logits.flatten(2), -1)  # (N, S+1, G*G)
        ce = -(heatmap_target(hom[..., :2] / hom[..., 2:]) * logp).sum(-1)  # (N, S+1)
        keep = torch.cat([present, torch.ones_like(present[:, :1])], 1)
        heat = (ce * keep).sum() / keep.sum()
        with torch.no_grad():
            dist = (out.objects - target_xy).norm(dim=-1)
            objects_m = (dist * present).sum() / present.sum().clamp_min(1)
            arm_m = (out.arm - arm).norm(dim=-1).mean()
        return {"loss": obj + arm_err + bce + self.heat_weight * heat, "objects_m": objects_m, "arm_m": arm_m}


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
        raise ReadoutError(file, "missing: train one with `bair-world readout --checkpoint CKPT`")
    try:
        data = file.read_bytes()
        tensors = load(data)
        header = json.loads(_metadata(data).get("readout", "{}"))
    except (OSError, ValueError, SafetensorError) as exc:
        raise ReadoutError(file, f"unreadable readout ({type(exc).__name__}: {str(exc)[:200]})") from None
    if header.get("format") != FORMAT:
        raise ReadoutError(file, f"not a {FORMAT} file")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise ReadoutError(file, f"a {FORMAT} v{version} file; this version reads v{FORMAT_VERSION} only (v1 read "
                                 "the code h and could not place objects): retrain it with `bair-world readout "
                                 "--checkpoint CKPT`")
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
