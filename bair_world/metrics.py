"""Frame-quality metrics for video prediction: PSNR, the seed's per-channel PSNR, SSIM, region PSNR,
sharpness, per-step curves.

Conventions (shared by every function here):

- Images are in [0, 1] with data range 1. uint8 inputs are divided by 255. Predictions are clipped
  to [0, 1] before scoring (a model's raw output may overshoot); targets are used as given.
- Layout is torch's ``(..., C, H, W)`` by default; pass ``channel_axis=-1`` for ``(..., H, W, C)``
  arrays such as uint8 frames read from disk. Every leading dimension is a batch dimension (they
  broadcast between prediction and target), so a ``(B, T, C, H, W)`` rollout gives ``(B, T)`` scores.
- Torch in, torch out (on the input's device); numpy in, numpy out (float64).
- Scores are computed in float64 (float32 on devices without it), so they match scikit-image to
  ~1e-6 dB.
- PSNR is capped at :data:`PSNR_CAP_DB` (100 dB): a frame with MSE 0 (a perfect prediction, e.g. a
  static scene under copy-last-frame) scores 100 dB instead of infinity, which would swamp every mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from bair_world.data.batch import IMAGE_SIZE

PSNR_CAP_DB = 100.0
"""Upper bound of every PSNR here: 10 log10(1 / 1e-10). A frame with MSE <= 1e-10 scores exactly this."""
_MSE_FLOOR = 10.0 ** (-PSNR_CAP_DB / 10.0)

SSIM_WIN_SIZE = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _as_tensor(x, channel_axis: int, name: str) -> torch.Tensor:
    """Any array -> float tensor (..., C, H, W) in [0, 1] (uint8 divided by 255)."""
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        x = x.copy()  # torch refuses to wrap read-only arrays (e.g. from np.broadcast_to) without a warning
    t = torch.as_tensor(x)
    if t.ndim < 3:
        raise ValueError(f"{name}: expected images (..., C, H, W) or (..., H, W, C), got shape {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        t = t.to(torch.float64) / 255.0
    elif not t.is_floating_point():
        raise ValueError(f"{name}: expected float in [0, 1] or uint8 images, got dtype {t.dtype}")
    if channel_axis not in (-3, -1, t.ndim - 3, t.ndim - 1):
        raise ValueError(f"channel_axis must be -3 (..., C, H, W) or -1 (..., H, W, C), got {channel_axis}")
    if channel_axis in (-1, t.ndim - 1):
        t = t.movedim(-1, -3)  # (..., H, W, C) -> (..., C, H, W)
    dtype = torch.float32 if t.device.type == "mps" else torch.float64
    return t.to(dtype)


def _prepare(pred, target, channel_axis: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Validate a (prediction, target) pair; returns float (..., C, H, W) tensors and whether to return numpy."""
    to_numpy = not isinstance(pred, torch.Tensor) and not isinstance(target, torch.Tensor)
    p = _as_tensor(pred, channel_axis, "prediction")
    g = _as_tensor(target, channel_axis, "target")
    if p.shape[-3:] != g.shape[-3:]:
        raise ValueError(f"prediction frames {tuple(p.shape[-3:])} != target frames {tuple(g.shape[-3:])} "
                         f"(shapes {tuple(p.shape)} and {tuple(g.shape)}, as (..., C, H, W))")
    try:  # batch dims broadcast, e.g. (K, T, ...) samples against one (1, T, ...) recording
        shape = torch.broadcast_shapes(p.shape, g.shape)
    except RuntimeError:
        raise ValueError(f"prediction shape {tuple(p.shape)} and target shape {tuple(g.shape)} do not broadcast") from None
    p, g = p.expand(shape), g.expand(shape)
    g = g.to(p.device)
    if not bool(torch.isfinite(p).all()):
        raise ValueError("prediction contains NaN or infinite values")
    return p.clamp(0.0, 1.0), g, to_numpy


def _out(x: torch.Tensor, to_numpy: bool):
    return x.cpu().numpy() if to_numpy else x


def psnr_from_mse(mse):
    """PSNR (dB) of mean squared errors on data range 1: 10 log10(1 / mse), capped at PSNR_CAP_DB
    (the one formula every PSNR here uses); torch or numpy."""
    if isinstance(mse, torch.Tensor):
        return 10.0 * torch.log10(1.0 / mse.clamp_min(_MSE_FLOOR))
    return 10.0 * np.log10(1.0 / np.maximum(mse, _MSE_FLOOR))


def mse(pred, target, *, channel_axis: int = -3):
    """Mean squared error of each frame over all pixels and channels; shape (...) of the batch dims."""
    p, g, to_numpy = _prepare(pred, target, channel_axis)
    return _out((p - g).pow(2).mean(dim=(-3, -2, -1)), to_numpy)


def psnr(pred, target, *, channel_axis: int = -3):
    """PSNR (dB) of each frame: 10 log10(1 / MSE), MSE over all pixels and channels, capped at 100 dB.

    Args:
        pred: predicted frames (..., C, H, W) (or (..., H, W, C) with ``channel_axis=-1``); clipped to [0, 1].
        target: recorded frames, same shape.
        channel_axis: -3 (torch layout) or -1 (channels last).

    Returns:
        (...) one PSNR per frame; a tensor for torch input, a float64 array for numpy input.
    """
    p, g, to_numpy = _prepare(pred, target, channel_axis)
    return _out(psnr_from_mse((p - g).pow(2).mean(dim=(-3, -2, -1))), to_numpy)


def finn_psnr(pred, target, *, channel_axis: int = -3):
    """The seed's ``finn_eval_seq`` PSNR: PSNR of each channel separately, averaged over channels.

    By Jensen's inequality this is >= :func:`psnr` (equal when all channels have the same MSE); it is
    what the seed's lab report (and SVG's original code) call PSNR, so it is reported for comparison.
    """
    p, g, to_numpy = _prepare(pred, target, channel_axis)
    per_channel = psnr_from_mse((p - g).pow(2).mean(dim=(-2, -1)))  # (..., C)
    return _out(per_channel.mean(dim=-1), to_numpy)


def _gaussian_window(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """1-D Gaussian taps as scipy.ndimage.gaussian_filter uses them (sigma 1.5, truncate 3.5 -> 11 taps)."""
    radius = SSIM_WIN_SIZE // 2
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    w = torch.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return w / w.sum()


def ssim(pred, target, *, channel_axis: int = -3, chunk: int = 4096):
    """Mean SSIM of each frame (Wang et al. 2004), averaged over channels.

    Matches ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=...)``: an 11-tap Gaussian window,
    K1 = 0.01, K2 = 0.03, and the mean over the pixels whose window lies fully inside the image
    (scikit-image filters with reflection and then crops 5 pixels per border, which is the same).

    Args:
        pred: predicted frames (..., C, H, W) (or channels last with ``channel_axis=-1``), H, W >= 11.
        target: recorded frames, same shape.
        channel_axis: -3 or -1.
        chunk: frames per convolution call (bounds memory on long batches).

    Returns:
        (...) one SSIM per frame, in [-1, 1].
    """
    p, g, to_numpy = _prepare(pred, target, channel_axis)
    *batch, c, h, w = p.shape
    if h < SSIM_WIN_SIZE or w < SSIM_WIN_SIZE:
        raise ValueError(f"SSIM needs images of at least {SSIM_WIN_SIZE}x{SSIM_WIN_SIZE}, got {h}x{w}")
    p = p.reshape(-1, 1, h, w)  # (N*C, 1, H, W): every channel filtered on its own
    g = g.reshape(-1, 1, h, w)  # (N*C, 1, H, W)
    win = _gaussian_window(p.device, p.dtype)
    win_v, win_h = win.view(1, 1, -1, 1), win.view(1, 1, 1, -1)
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    scores = []
    for start in range(0, p.shape[0], max(1, chunk)):
        x, y = p[start:start + chunk], g[start:start + chunk]
        stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (n, 5, H, W)
        n = stack.shape[0]
        flat = stack.reshape(n * 5, 1, h, w)  # (5n, 1, H, W)
        filt = F.conv2d(F.conv2d(flat, win_v), win_h)  # separable 'valid' Gaussian: (5n, 1, H-10, W-10)
        mx, my, mxx, myy, mxy = filt.reshape(n, 5, *filt.shape[-2:]).unbind(1)  # each (n, H-10, W-10)
        vx, vy, vxy = mxx - mx * mx, myy - my * my, mxy - mx * my
        s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        scores.append(s.mean(dim=(-2, -1)))
    per_channel = torch.cat(scores).reshape(*batch, c)  # (..., C)
    return _out(per_channel.mean(dim=-1), to_numpy)


def region_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PSNR of each frame over the pixels of ``mask`` only (all channels); NaN where the mask is empty.

    Args:
        pred, target: (..., C, H, W) torch frames in [0, 1] (pred is clipped).
        mask: (..., H, W) bool, broadcastable to the frames' leading dimensions.

    Returns:
        (...) PSNR in dB, capped at PSNR_CAP_DB.
    """
    pred, target, _ = _prepare(pred, target, -3)
    m = mask.unsqueeze(-3).to(pred.dtype)  # (..., H, W) -> (..., 1, H, W)
    sq = ((pred - target) ** 2 * m).sum((-3, -2, -1))
    n = m.sum((-2, -1)).squeeze(-1) * pred.shape[-3]  # pixels x channels
    mse = sq / n.clamp(min=1)
    return torch.where(n > 0, psnr_from_mse(mse), torch.full_like(mse, math.nan))


def sharpness(frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean image-gradient magnitude of each frame: (..., C, H, W) in [0, 1] -> (...).

    The gradient is taken per channel from forward differences on the common (H-1, W-1) grid;
    blur lowers it, so prediction / recorded is a sharpness ratio (1 = as sharp as the truth).
    With ``mask`` (..., H, W) bool, the mean is over the masked pixels only (NaN if none).
    """
    x = frames.double() if frames.device.type == "cpu" else frames.float()
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    mag = (dx ** 2 + dy ** 2).sqrt().mean(-3)  # (..., H-1, W-1), channel mean
    if mask is None:
        return mag.mean((-2, -1))
    m = mask[..., :-1, :-1].to(mag.dtype)
    n = m.sum((-2, -1))
    return torch.where(n > 0, (mag * m).sum((-2, -1)) / n.clamp(min=1), torch.full_like(n, math.nan))


def copy_last_frame(frames, n_past: int):
    """The copy-last-frame baseline: every predicted frame is the last context frame.

    Args:
        frames: (B, T, ...) recorded sequences (any frame layout, torch or numpy).
        n_past: context frames; the prediction covers steps n_past .. T-1.

    Returns:
        (B, T - n_past, ...) the baseline's predictions.
    """
    if not 1 <= n_past < frames.shape[1]:
        raise ValueError(f"n_past must be in [1, {frames.shape[1] - 1}] for {frames.shape[1]} frames, got {n_past}")
    last = frames[:, n_past - 1:n_past]  # (B, 1, ...)
    reps = (1, frames.shape[1] - n_past) + (1,) * (frames.ndim - 2)
    return last.repeat(*reps) if isinstance(frames, torch.Tensor) else np.tile(last, reps)


@dataclass
class StepCurves:
    """Accumulates per-sequence, per-step scores over batches; gives means and per-step curves.

    ``update("psnr", scores)`` with ``scores`` (B, S) for B sequences and S predicted steps. Means are
    over every (sequence, step) pair seen, i.e. the mean over frames then sequences of the seed.
    """

    sums: dict[str, np.ndarray] = field(default_factory=dict)
    """Per metric, the (S,) sum over sequences of each step's score."""
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    """Per metric, the (S,) number of sequences with a finite score at each step."""

    def update(self, name: str, scores) -> None:
        """Add (B, S) scores of B sequences to metric ``name``; NaN scores (e.g. a region absent from
        a frame) are left out of that step's mean."""
        arr = scores.detach().cpu().double().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores, float)
        if arr.ndim != 2:
            raise ValueError(f"{name}: expected (sequences, steps) scores, got shape {arr.shape}")
        if name in self.sums and self.sums[name].shape[0] != arr.shape[1]:
            raise ValueError(f"{name}: {arr.shape[1]} steps, earlier batches had {self.sums[name].shape[0]}")
        finite = np.isfinite(arr)
        self.sums[name] = self.sums.get(name, 0.0) + np.where(finite, arr, 0.0).sum(axis=0)
        self.counts[name] = self.counts.get(name, 0) + finite.sum(axis=0)

    def curve(self, name: str) -> np.ndarray:
        """(S,) the mean score at each predicted step (NaN at a step without any finite score)."""
        if name not in self.sums or not np.any(self.counts[name]):
            raise KeyError(f"no scores recorded for {name!r}")
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts[name] > 0, self.sums[name] / np.maximum(self.counts[name], 1), np.nan)

    def mean(self, name: str) -> float:
        """The mean over all sequences and steps (steps without finite scores left out)."""
        return float(np.nanmean(self.curve(name)))

    @property
    def names(self) -> list[str]:
        return list(self.sums)


def summarise(curves: StepCurves) -> dict[str, dict[str, float | list[float]]]:
    """{metric: {"mean": float, "per_step": [float, ...]}} for JSON output."""
    out = {}
    for name in curves.names:
        curve = curves.curve(name)
        out[name] = {"mean": float(np.nanmean(curve)), "per_step": [float(v) if math.isfinite(v) else None for v in curve]}
    return out


#: Goal distance compares frames after area-averaging POOL x POOL blocks (64x64 -> 16x16): it
#: tolerates a blurry prediction and a pixel of misalignment, and still sees the arm and the toys.
POOL = 4


def goal_distance(frames: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """Image distance to the goal: RMSE of 4x4 area-averaged RGB frames, intensities in [0, 1].

    Args:
        frames: uint8 (..., 64, 64, 3).
        goals: uint8 (..., 64, 64, 3), broadcastable against ``frames``.

    Returns:
        float64 (...): 0 for identical frames, 1 for black against white.
    """
    def pooled(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.shape[-3:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
            raise ValueError(f"goal_distance needs (..., 64, 64, 3) frames, got {x.shape}")
        n = IMAGE_SIZE // POOL
        # (..., 64, 64, 3) -> (..., 16, 4, 16, 4, 3) -> mean over the 4x4 blocks -> (..., 16, 16, 3)
        return x.astype(np.float32).reshape(*x.shape[:-3], n, POOL, n, POOL, 3).mean(axis=(-4, -2)) / 255.0

    diff = pooled(frames) - pooled(goals)
    return np.sqrt(np.mean(diff.astype(np.float64) ** 2, axis=(-3, -2, -1)))
