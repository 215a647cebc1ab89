"""Rollout videos (recorded | predicted samples | absolute error) and GIF export (`bair-world rollout`:
`bair_world.rollout_cli`).

A rollout video frame at step t is one row of panels, each upscaled (nearest) by ``scale``:

    recorded | sample 1 .. sample K | |error| 1 .. |error| K

Every panel has a coloured frame: green while t < n_context (the model was given these frames),
red for predicted steps, grey around the recorded panel. Titles sit in a strip above the panels;
a strip below holds the step ("t=3/30") and the PSNR of each sample against the recorded frame.
Error panels show the per-pixel mean absolute error over channels, times ``error_gain``, through
the inferno colour map (black = exact). The pixels inside each panel are the input's, untouched.

Files are written atomically (`bair_world.io.replacing`: a temporary sibling, probed by
`probe_video` before ``os.replace``, so a full disk or ``ulimit -f`` never installs an unplayable file):
``.mp4`` as H.264 in yuv420p (plays everywhere) through imageio-ffmpeg, one encoded frame per input
frame, ``.gif`` through imageio's Pillow plugin (which merges identical consecutive frames into one
longer frame; playback timing is unchanged).
"""

from __future__ import annotations

import errno
from pathlib import Path

import cv2
import numpy as np

from bair_world.io import replacing

SUFFIXES = (".mp4", ".gif")
CONTEXT_RGB = (40, 200, 60)
PREDICTED_RGB = (220, 40, 40)
RECORDED_RGB = (150, 150, 150)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _to_uint8(frames, name: str) -> np.ndarray:
    """uint8 frames as given; float frames in [0, 1] are clipped and scaled."""
    arr = np.asarray(frames)
    if arr.dtype == np.uint8:
        return arr
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name}: expected uint8 or float frames in [0, 1], got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: frames contain NaN or infinite values")
    return (np.clip(arr, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def _check_suffix(path: Path) -> None:
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{path}: unsupported video format {path.suffix!r}; use one of {SUFFIXES}")


def write_frames(path: str | Path, frames, *, fps: float = 5.0) -> Path:
    """Write (T, H, W, 3) RGB frames as ``.mp4`` (H.264, yuv420p) or ``.gif`` by suffix, atomically.

    MP4 needs even H and W (yuv420p halves the chroma planes); odd sizes are padded by one black pixel.
    """
    path = Path(path)
    frames = _to_uint8(frames, str(path))
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"{path}: expected frames (T >= 1, H, W, 3), got shape {frames.shape}")
    if not fps > 0:
        raise ValueError(f"{path}: fps must be > 0, got {fps}")
    _check_suffix(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with replacing(path, keep_suffix=True) as tmp:  # ffmpeg chooses the format by the suffix
            if tmp.suffix == ".gif":
                import imageio.v3 as iio

                data = iio.imwrite("<bytes>", frames, plugin="pillow", extension=".gif", duration=1000.0 / fps,
                                   loop=0)  # encoded in memory: a failed write raises here, not in a destructor
                with open(tmp, "wb") as f:
                    f.write(data)
            else:
                _write_mp4(tmp, frames, fps)
            probe_video(tmp, len(frames), name=path)  # a write cut short is never installed
    except OSError as e:
        if e.filename is None or Path(e.filename).name.startswith(f".{path.stem}.tmp-"):
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e  # name the file, not its temporary
        raise
    return path


def probe_video(path: str | Path, n_frames: int, *, name: str | Path | None = None) -> None:
    """Check that the video file ``path`` is complete: an MP4 decodes to ``n_frames`` frames (ffmpeg),
    a GIF's last frame decodes (Pillow merges identical frames, so its count may be smaller).

    Raises:
        OSError: naming ``name`` (default ``path``): the file is truncated or unplayable.
    """
    path = Path(path)
    shown = str(name or path)
    if path.suffix.lower() == ".gif":
        from PIL import Image

        try:
            with Image.open(path) as img:
                img.seek(img.n_frames - 1)
                img.load()
        except Exception as e:  # Pillow raises several types for a truncated file
            raise OSError(errno.EIO, f"the written GIF does not decode ({type(e).__name__}: {e})", shown) from None
        return
    import subprocess

    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-map", "0:v:0",
           "-f", "null", "-"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        decoded, _ = imageio_ffmpeg.count_frames_and_secs(str(path)) if done.returncode == 0 else (None, None)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        raise OSError(errno.EIO, f"the written MP4 cannot be probed ({e})", shown) from None
    if done.returncode != 0 or decoded != n_frames:
        why = (done.stderr.strip().splitlines() or ["unknown"])[-1] if done.returncode else f"{decoded} frames"
        raise OSError(errno.EIO, f"the written MP4 is unplayable ({why[:160]}; expected {n_frames} frames)", shown)


def _write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    """Encode (T, H, W, 3) uint8 frames as H.264/yuv420p, sending each frame to ffmpeg exactly once.

    Frames go straight to the encoder rather than through a clip that is resampled at ``fps``
    (moviepy's ``ImageSequenceClip.iter_frames`` rounds frame times and repeats or drops frames).
    """
    import imageio_ffmpeg

    _, h, w, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))  # even sizes for yuv420p
    writer = imageio_ffmpeg.write_frames(str(path), (frames.shape[2], frames.shape[1]), fps=fps, codec="libx264",
                                         pix_fmt_out="yuv420p", quality=None, output_params=["-crf", "17"],
                                         macro_block_size=1, ffmpeg_log_level="error")
    writer.send(None)  # start ffmpeg
    try:
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
    finally:
        writer.close()


def write_gif(path: str | Path, frames, *, fps: float = 5.0, scale: int = 1) -> Path:
    """Write (T, H, W, 3) uint8 (or float in [0, 1]) frames as a looping GIF, upscaled by ``scale``."""
    frames = _to_uint8(frames, str(path))
    if Path(path).suffix.lower() != ".gif":
        raise ValueError(f"{path}: write_gif writes .gif files")
    if scale < 1:
        raise ValueError(f"{path}: scale must be >= 1, got {scale}")
    if frames.ndim == 4 and scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)  # nearest upscale (T, sH, sW, 3)
    return write_frames(path, frames, fps=fps)


def _text(img: np.ndarray, text: str, x: int, y: int, font_scale: float, colour=(235, 235, 235)) -> None:
    cv2.putText(img, text, (x, y), _FONT, font_scale, colour, 1, cv2.LINE_AA)


def _error_panel(pred: np.ndarray, rec: np.ndarray, gain: float) -> np.ndarray:
    """(H, W, 3) inferno map of gain * mean over channels of |pred - rec| (both uint8 (H, W, 3))."""
    err = np.abs(pred.astype(np.float32) - rec.astype(np.float32)).mean(axis=-1)  # (H, W) in [0, 255]
    grey = np.clip(err * gain, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def compose_rollout_frames(recorded, predicted, *, n_context: int, psnr=None, scale: int = 4,
                           error_gain: float = 4.0, reference_title: str = "recorded") -> np.ndarray:
    """The video frames of a rollout: recorded | K samples | K error panels, with labels.

    Args:
        recorded: (T, H, W, 3) uint8 (or float [0, 1]) recorded frames.
        predicted: (K, T, H, W, 3) K sampled rollouts over the same T steps (the first ``n_context``
            are normally the context frames themselves), or (T, H, W, 3) for one sample.
        n_context: frames given to the model; they get a green frame and no PSNR.
        psnr: (K, T) or (T,) PSNR per sample and step to print; None computes it from the frames.
        scale: nearest-neighbour upscaling of each panel.
        error_gain: multiplier of the absolute error before colour mapping.
        reference_title: the first panel's title ("true world" for a counterfactual rollout).

    Returns:
        (T, height, width, 3) uint8 frames.
    """
    rec, pred, psnr = _checked_rollout(recorded, predicted, n_context, psnr, scale)
    k, t_len, h, w, _ = pred.shape
    ph, pw = h * scale, w * scale
    border = max(2, scale)
    cell_w = pw + 2 * border
    font = max(0.3, 0.11 * scale)
    (_, text_h), baseline = cv2.getTextSize("Ag", _FONT, font, 1)
    strip = text_h + baseline + 2 * border
    n_panels = 1 + 2 * k
    height = strip + ph + 2 * border + strip
    width = n_panels * cell_w
    height, width = height + height % 2, width + width % 2  # even sizes for yuv420p
    titles = [reference_title] + [("predicted" if k == 1 else f"sample {i + 1}") for i in range(k)] + \
             [("|error|" if k == 1 else f"|error| {i + 1}") for i in range(k)]

    out = np.zeros((t_len, height, width, 3), dtype=np.uint8)
    top = strip + border
    for t in range(t_len):
        canvas = out[t]
        context = t < n_context
        panels = [rec[t]] + [pred[i, t] for i in range(k)] + [_error_panel(pred[i, t], rec[t], error_gain)
                                                             for i in range(k)]
        for j, (panel, title) in enumerate(zip(panels, titles)):
            x0 = j * cell_w
            colour = RECORDED_RGB if j == 0 else (CONTEXT_RGB if context else PREDICTED_RGB)
            canvas[top - border:top + ph + border, x0:x0 + cell_w] = colour
            canvas[top:top + ph, x0 + border:x0 + border + pw] = panel.repeat(scale, 0).repeat(scale, 1)
            _text(canvas, title, x0 + border, strip - baseline - border // 2, font)
            y_foot = top + ph + border + text_h + border
            if j == 0:
                _text(canvas, f"t={t}/{t_len} " + ("context" if context else "pred"), x0 + border, y_foot, font)
            elif j <= k and not context and np.isfinite(psnr[j - 1, t]):
                _text(canvas, f"{psnr[j - 1, t]:.1f} dB", x0 + border, y_foot, font)
    return out


def _checked_rollout(recorded, predicted, n_context: int, psnr, scale: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`compose_rollout_frames`'s arguments checked (a ValueError names the argument): recorded (T, H, W, 3)
    and predicted (K, T, H, W, 3) as uint8, and the PSNR (K, T) (computed from the frames when None)."""
    from bair_world import metrics

    rec = _to_uint8(recorded, "recorded")
    pred = _to_uint8(predicted, "predicted")
    if pred.ndim == 4:
        pred = pred[None]  # (T, H, W, 3) -> (1, T, H, W, 3)
    if rec.ndim != 4 or rec.shape[-1] != 3 or rec.shape[0] == 0:
        raise ValueError(f"recorded: expected (T, H, W, 3) frames, got shape {rec.shape}")
    if pred.ndim != 5 or pred.shape[1:] != rec.shape or pred.shape[0] == 0:
        raise ValueError(f"predicted: expected (K, {', '.join(map(str, rec.shape))}), got shape {pred.shape}")
    k, t_len = pred.shape[:2]
    if not 0 <= n_context <= t_len:
        raise ValueError(f"n_context must be in [0, {t_len}], got {n_context}")
    if not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    if psnr is None:
        psnr = metrics.psnr(pred, np.broadcast_to(rec, pred.shape), channel_axis=-1)  # (K, T)
    psnr = np.asarray(psnr, dtype=np.float64)
    if psnr.shape == (t_len,) and k == 1:
        psnr = psnr[None]  # (T,) -> (1, T)
    if psnr.shape != (k, t_len):
        raise ValueError(f"psnr: expected shape ({k}, {t_len}) (or ({t_len},) for one sample), got {psnr.shape}")
    return rec, pred, psnr


def write_rollout_video(path: str | Path, recorded, predicted, *, n_context: int, psnr=None, fps: float = 5.0,
                        scale: int = 4, error_gain: float = 4.0, reference_title: str = "recorded") -> Path:
    """Compose (see `compose_rollout_frames`) and write a rollout video (.mp4 or .gif), atomically."""
    frames = compose_rollout_frames(recorded, predicted, n_context=n_context, psnr=psnr, scale=scale,
                                    error_gain=error_gain, reference_title=reference_title)
    return write_frames(path, frames, fps=fps)
