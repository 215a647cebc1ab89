"""Rollout videos: read the files back and check frame count, size, layout, content and atomicity."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from helpers import make_sequence

from bair_world import cli, rollout_cli, video
from bair_world.checkpoint import save_checkpoint
from bair_world.data.bair_folder import write_sequence
from bair_world.models import SVG, model_preset

T, K, SCALE = 6, 2, 2


def _read_mp4(path: Path) -> np.ndarray:
    """Every encoded frame, decoded once each (``-fps_mode passthrough``: no resampling): (T, H, W, 3) uint8."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path), output_params=["-fps_mode", "passthrough"])
    w, h = next(reader)["size"]
    return np.stack([np.frombuffer(buf, np.uint8).reshape(h, w, 3) for buf in reader])


@pytest.fixture
def rollout():
    """Smooth recorded frames (flat colours, codec-friendly) and K predictions, each a different shade."""
    colours = np.linspace(30, 220, T)[:, None] * np.array([1.0, 0.6, 0.3])  # (T, 3) one colour per step
    recorded = np.broadcast_to(colours[:, None, None, :], (T, 64, 64, 3)).round().astype(np.uint8).copy()
    predicted = np.stack([recorded, np.clip(recorded.astype(int) + 40, 0, 255).astype(np.uint8)])  # (K, T, ...)
    return recorded, predicted


def _panel(frames: np.ndarray, j: int, n_frames_height: int) -> np.ndarray:
    """Interior of panel j of composed frames (T, H, W, 3), located from the documented geometry."""
    border = max(2, SCALE)
    cell = 64 * SCALE + 2 * border
    strip = (n_frames_height - 64 * SCALE - 2 * border) // 2  # header and footer strips are equal (+1 pad)
    top = strip + border
    x0 = j * cell + border
    m = 2 * SCALE  # stay clear of codec ringing at the border
    return frames[:, top + m:top + 64 * SCALE - m, x0 + m:x0 + 64 * SCALE - m]


def test_compose_layout_and_panels_are_the_input(rollout):
    recorded, predicted = rollout
    frames = video.compose_rollout_frames(recorded, predicted, n_context=2, scale=SCALE)
    assert frames.shape[0] == T and frames.dtype == np.uint8
    border = max(2, SCALE)
    assert frames.shape[2] == (1 + 2 * K) * (64 * SCALE + 2 * border)
    assert frames.shape[1] % 2 == 0 and frames.shape[2] % 2 == 0
    h = frames.shape[1]
    for t in range(T):
        assert np.all(_panel(frames, 0, h)[t] == recorded[t, 0, 0])
        assert np.all(_panel(frames, 2, h)[t] == predicted[1, t, 0, 0])
    # error panel of the exact sample is black (inferno at 0), of the shifted one is not
    assert _panel(frames, 3, h).max() < 10 and _panel(frames, 4, h).mean() > 30
    # context steps framed green, predicted steps red (the pixel just outside the sample panel)
    strip = (h - 64 * SCALE - 2 * border) // 2
    edge = frames[:, strip + 1, 64 * SCALE + 2 * border + 64]  # (T, 3) in the top border of sample 1
    assert all(tuple(edge[t]) == video.CONTEXT_RGB for t in range(2))
    assert all(tuple(edge[t]) == video.PREDICTED_RGB for t in range(2, T))


def test_mp4_reads_back_with_frames_size_and_colours(rollout, tmp_path):
    recorded, predicted = rollout
    out = video.write_rollout_video(tmp_path / "sub" / "r.mp4", recorded, predicted, n_context=2, scale=SCALE)
    composed = video.compose_rollout_frames(recorded, predicted, n_context=2, scale=SCALE)
    back = _read_mp4(out)
    assert back.shape == composed.shape
    h = back.shape[1]
    rec_mean = _panel(back, 0, h).reshape(T, -1, 3).mean(1)  # (T, 3) mean colour of the recorded panel
    np.testing.assert_allclose(rec_mean, recorded[:, 0, 0].astype(float), atol=4)  # within codec error
    pred_mean = _panel(back, 2, h).reshape(T, -1, 3).mean(1)
    np.testing.assert_allclose(pred_mean, predicted[1, :, 0, 0].astype(float), atol=4)
    assert not list(out.parent.glob(".*tmp*"))  # no temporary file left behind


@pytest.mark.parametrize("fps", [5.0, 7.5, 30.0])
def test_mp4_holds_every_frame_once_in_order(tmp_path, fps):
    """30 distinct frames (a bar at a new place each step) decode back as the same 30, in order."""
    n = 30
    frames = np.full((n, 64, 96, 3), 40, np.uint8)
    for t in range(n):
        frames[t, :, 3 * t:3 * t + 6] = (230, 200, 60)  # (64, 6) bar at x = 3t
    back = _read_mp4(video.write_frames(tmp_path / "bars.mp4", frames, fps=fps)).astype(np.float32)
    assert back.shape == frames.shape
    dist = np.abs(back[:, None] - frames[None].astype(np.float32)).mean(axis=(2, 3, 4))  # (decoded, written)
    assert list(dist.argmin(axis=1)) == list(range(n))  # decoded frame t is written frame t: none dropped or repeated
    assert dist.diagonal().max() < 3  # within codec error


def test_gif_reads_back(rollout, tmp_path):
    recorded, predicted = rollout
    out = video.write_rollout_video(tmp_path / "r.gif", recorded, predicted[:1], n_context=2, scale=SCALE)
    back = iio.imread(out, index=None)[..., :3]  # (T, H, W, 3)
    composed = video.compose_rollout_frames(recorded, predicted[:1], n_context=2, scale=SCALE)
    assert back.shape == composed.shape
    rec_mean = _panel(back, 0, back.shape[1]).reshape(T, -1, 3).mean(1)
    np.testing.assert_allclose(rec_mean, recorded[:, 0, 0].astype(float), atol=6)  # GIF palette error


def test_write_gif_upscales_and_keeps_frame_count(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (4, 8, 10, 3), dtype=np.uint8)
    out = video.write_gif(tmp_path / "s.gif", frames, scale=3)
    back = iio.imread(out, index=None)
    assert back.shape[:3] == (4, 24, 30)
    with pytest.raises(ValueError, match="gif"):
        video.write_gif(tmp_path / "s.mp4", frames)


def test_bad_input_is_rejected(rollout, tmp_path):
    recorded, predicted = rollout
    with pytest.raises(ValueError, match="unsupported video format"):
        video.write_rollout_video(tmp_path / "r.avi", recorded, predicted, n_context=2)
    with pytest.raises(ValueError, match="predicted"):
        video.compose_rollout_frames(recorded, predicted[:, :-1], n_context=2)
    with pytest.raises(ValueError, match="n_context"):
        video.compose_rollout_frames(recorded, predicted, n_context=T + 1)
    with pytest.raises(ValueError, match="psnr"):
        video.compose_rollout_frames(recorded, predicted, n_context=2, psnr=np.zeros(T))
    with pytest.raises(ValueError, match="NaN"):
        video.compose_rollout_frames(np.full((T, 64, 64, 3), np.nan), predicted, n_context=2)


def test_failed_write_keeps_the_old_file_and_no_temp(rollout, tmp_path, monkeypatch):
    import imageio_ffmpeg

    recorded, predicted = rollout
    target = tmp_path / "r.mp4"
    target.write_bytes(b"old video")

    def broken(filename, *a, **k):
        Path(filename).write_bytes(b"half")
        raise OSError("disk full")
        yield

    monkeypatch.setattr(imageio_ffmpeg, "write_frames", broken)
    with pytest.raises(OSError, match="disk full"):
        video.write_rollout_video(target, recorded, predicted, n_context=2, scale=1)
    assert target.read_bytes() == b"old video"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.mp4"]


@pytest.fixture
def tiny_checkpoint_and_data(tmp_path):
    torch.manual_seed(0)
    model = SVG(model_preset("tiny"))
    ckpt = save_checkpoint(tmp_path / "ckpt", model, step=0, epoch=0)
    for i in range(2):
        write_sequence(tmp_path / "data" / "test" / "traj_0" / str(i), *make_sequence(i, length=T))
    return ckpt, tmp_path / "data"


def test_rollout_cli_writes_video_with_k_samples(tiny_checkpoint_and_data, tmp_path, capsys):
    ckpt, data = tiny_checkpoint_and_data
    out = tmp_path / "roll.gif"
    argv = ["rollout", "--checkpoint", str(ckpt), "--out", str(out), "--data-root", str(data), "--index", "1",
            "--samples", "2", "--n-past", "2", "--n-future", str(T - 2), "--scale", "1", "--device", "cpu"]
    assert cli.main(argv) == 0
    assert "mean PSNR" in capsys.readouterr().out
    back = iio.imread(out, index=None)
    assert back.shape[0] == T and back.shape[2] == 5 * (64 + 4)  # recorded + 2 samples + 2 error panels

    recorded, predicted = rollout_cli.predict_rollout(ckpt, data, index=1, samples=2, n_future=T - 2,
                                                device="cpu")
    assert np.array_equal(recorded, make_sequence(1, length=T)[0])
    assert np.array_equal(predicted[:, :2], np.broadcast_to(recorded[:2], (2, 2, 64, 64, 3)))  # context shown as is
    again = rollout_cli.predict_rollout(ckpt, data, index=1, samples=2, n_future=T - 2, device="cpu")[1]
    assert np.array_equal(predicted, again)  # seeded


def test_rollout_rejects_bad_index_and_too_long_request(tiny_checkpoint_and_data):
    from bair_world.data import DataError

    ckpt, data = tiny_checkpoint_and_data
    with pytest.raises(IndexError, match="out of range"):
        rollout_cli.predict_rollout(ckpt, data, index=5, n_future=2, device="cpu")
    with pytest.raises(DataError, match="actions.csv"):
        rollout_cli.predict_rollout(ckpt, data, n_future=T, device="cpu")


def test_rollout_cli_refuses_another_n_past_than_the_checkpoints(tiny_checkpoint_and_data, tmp_path, capsys):
    ckpt, data = tiny_checkpoint_and_data
    argv = ["rollout", "--checkpoint", str(ckpt), "--out", str(tmp_path / "r.gif"), "--data-root", str(data),
            "--n-past", "3", "--n-future", "2", "--device", "cpu"]
    assert cli.main(argv) == 2
    assert "n_past=3 differs from the checkpoint's n_past=2" in capsys.readouterr().err
    assert not (tmp_path / "r.gif").exists()


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_rollout_cli_on_the_real_bair_sequence_reads_back(real_bair_root, tmp_path, suffix, capsys):
    from bair_world.data.bair_folder import read_sequence

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "ckpt", SVG(model_preset("tiny")), step=0, epoch=0)
    out = tmp_path / f"real{suffix}"
    argv = ["rollout", "--checkpoint", str(ckpt), "--out", str(out), "--data-root", str(real_bair_root),
            "--scale", "2", "--device", "cpu"]  # defaults: split test, index 0, 2 context -> 28 predicted
    assert cli.main(argv) == 0
    assert "30 frames" in capsys.readouterr().out
    back = _read_mp4(out) if suffix == ".mp4" else iio.imread(out, index=None)[..., :3]  # (T, H, W, 3)
    assert back.shape[0] == 30 and back.shape[2] == 3 * (64 * 2 + 4)  # recorded | predicted | error
    recorded = read_sequence(real_bair_root / "test" / "GT_175" / "175")[0]  # (30, 64, 64, 3)
    border = 2
    strip = (back.shape[1] - 128 - 2 * border) // 2
    panel = back[:, strip + border:strip + border + 128, border:border + 128]  # recorded panel, upscaled x2
    small = panel.reshape(30, 64, 2, 64, 2, 3).mean(axis=(2, 4))  # (30, 64, 64, 3) undo the upscale
    err = np.abs(small - recorded.astype(float)).mean()
    assert err < 6, err  # the real frames, within codec / palette error
