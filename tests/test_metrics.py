"""PSNR / SSIM against scikit-image, on random frames and on the real BAIR frames."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bair_world import metrics

skm = pytest.importorskip("skimage.metrics")


def _sk_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """scikit-image SSIM of two (H, W, C) float frames, with the protocol metrics.ssim promises."""
    return skm.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=1.0, channel_axis=-1)


@pytest.fixture
def frames():
    rng = np.random.default_rng(0)
    target = rng.random((2, 3, 3, 64, 64))  # (B, T, C, H, W)
    pred = np.clip(target + rng.normal(0, 0.1, target.shape), 0, 1)
    return pred, target


def test_psnr_matches_skimage_per_frame(frames):
    pred, target = frames
    ours = metrics.psnr(torch.from_numpy(pred), torch.from_numpy(target))
    assert isinstance(ours, torch.Tensor) and ours.shape == (2, 3)
    for b in range(2):
        for t in range(3):
            ref = skm.peak_signal_noise_ratio(target[b, t], pred[b, t], data_range=1.0)
            assert ours[b, t].item() == pytest.approx(ref, abs=1e-6)


def test_ssim_matches_skimage_per_frame(frames):
    pred, target = frames
    ours = metrics.ssim(torch.from_numpy(pred).float(), torch.from_numpy(target).float())
    assert ours.shape == (2, 3)
    for b in range(2):
        for t in range(3):
            ref = _sk_ssim(pred[b, t].transpose(1, 2, 0), target[b, t].transpose(1, 2, 0))
            assert ours[b, t].item() == pytest.approx(ref, abs=1e-5)


def test_finn_psnr_is_per_channel_mean(frames):
    pred, target = frames
    ours = metrics.finn_psnr(pred, target)
    assert isinstance(ours, np.ndarray)
    ref = np.mean([skm.peak_signal_noise_ratio(target[0, 0, c], pred[0, 0, c], data_range=1.0) for c in range(3)])
    assert ours[0, 0] == pytest.approx(ref, abs=1e-6)
    assert np.all(ours >= metrics.psnr(pred, target) - 1e-9)  # Jensen: never below the pooled PSNR


def test_predictions_are_clipped_before_scoring():
    target = np.full((1, 3, 16, 16), 1.0)
    over = np.full((1, 3, 16, 16), 1.5)  # overshooting output of a model: clipped to 1 -> perfect
    assert metrics.psnr(over, target)[0] == metrics.PSNR_CAP_DB
    assert metrics.ssim(over, target)[0] == pytest.approx(1.0)


def test_identical_frames_are_capped_not_infinite():
    x = torch.rand(4, 3, 64, 64)
    assert torch.all(metrics.psnr(x, x) == metrics.PSNR_CAP_DB)
    assert torch.all(metrics.finn_psnr(x, x) == metrics.PSNR_CAP_DB)
    assert torch.allclose(metrics.ssim(x, x), torch.ones(4, dtype=torch.float64))


def test_channels_last_uint8_equals_float_channels_first(frames):
    pred, target = frames
    p8 = (pred * 255).round().astype(np.uint8).transpose(0, 1, 3, 4, 2)  # (B, T, H, W, C)
    g8 = (target * 255).round().astype(np.uint8).transpose(0, 1, 3, 4, 2)
    last = metrics.psnr(p8, g8, channel_axis=-1)
    first = metrics.psnr(p8.transpose(0, 1, 4, 2, 3) / 255.0, g8.transpose(0, 1, 4, 2, 3) / 255.0)
    np.testing.assert_allclose(last, first, atol=1e-9)
    np.testing.assert_allclose(metrics.ssim(p8, g8, channel_axis=-1),
                               metrics.ssim(p8.transpose(0, 1, 4, 2, 3), g8.transpose(0, 1, 4, 2, 3)), atol=1e-9)


def test_bad_input_is_rejected():
    x = torch.rand(2, 3, 64, 64)
    with pytest.raises(ValueError, match="shape"):
        metrics.psnr(x, torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="NaN"):
        metrics.psnr(torch.full_like(x, float("nan")), x)
    with pytest.raises(ValueError, match="at least 11"):
        metrics.ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="expected images"):
        metrics.psnr(torch.rand(64, 64), torch.rand(64, 64))
    with pytest.raises(ValueError, match="dtype"):
        metrics.psnr(torch.ones(1, 3, 4, 4, dtype=torch.int64), torch.ones(1, 3, 4, 4, dtype=torch.int64))


def _real_frames(root: Path) -> np.ndarray:
    seq = root / "test" / "GT_175" / "175"
    imgs = [cv2.imread(str(seq / f"{t}.png"), cv2.IMREAD_COLOR) for t in range(30)]
    return np.stack([cv2.cvtColor(im, cv2.COLOR_BGR2RGB) for im in imgs])  # (30, 64, 64, 3) uint8


def test_real_bair_copy_last_frame_matches_skimage(real_bair_root):
    frames = _real_frames(real_bair_root)
    baseline = metrics.copy_last_frame(frames[None], n_past=2)[0]  # (28, 64, 64, 3)
    target = frames[2:]
    ours_psnr = metrics.psnr(baseline, target, channel_axis=-1)
    ours_ssim = metrics.ssim(baseline, target, channel_axis=-1)
    for t in range(0, 28, 3):
        a, b = target[t] / 255.0, baseline[t] / 255.0
        if np.array_equal(a, b):
            assert ours_psnr[t] == metrics.PSNR_CAP_DB
            continue
        assert ours_psnr[t] == pytest.approx(skm.peak_signal_noise_ratio(a, b, data_range=1.0), abs=1e-6)
        assert ours_ssim[t] == pytest.approx(_sk_ssim(b, a), abs=1e-6)
    # a moving arm makes the last context frame a worse guess further out
    assert ours_psnr[:5].mean() > ours_psnr[-5:].mean()


def test_copy_last_frame_baseline_repeats_the_last_context_frame():
    frames = torch.arange(2 * 5, dtype=torch.float32).reshape(2, 5, 1, 1, 1)  # (B, T, C, H, W)
    out = metrics.copy_last_frame(frames, n_past=2)
    assert out.shape == (2, 3, 1, 1, 1)
    assert torch.equal(out[:, :, 0, 0, 0], frames[:, 1:2, 0, 0, 0].expand(2, 3))
    with pytest.raises(ValueError, match="n_past"):
        metrics.copy_last_frame(frames, n_past=5)


def test_step_curves_average_over_sequences_then_steps():
    curves = metrics.StepCurves()
    curves.update("psnr", np.array([[10.0, 20.0], [30.0, 40.0]]))
    curves.update("psnr", torch.tensor([[20.0, 30.0]]))
    np.testing.assert_allclose(curves.curve("psnr"), [20.0, 30.0])
    assert curves.mean("psnr") == pytest.approx(25.0)
    assert metrics.summarise(curves)["psnr"] == {"mean": 25.0, "per_step": [20.0, 30.0]}
    with pytest.raises(ValueError, match="steps"):
        curves.update("psnr", np.zeros((1, 3)))
    with pytest.raises(KeyError):
        curves.curve("ssim")


def test_batch_dims_broadcast_samples_against_one_recording():
    target = torch.rand(1, 4, 3, 16, 16)  # (1, T, C, H, W)
    samples = torch.rand(3, 4, 3, 16, 16)  # (K, T, C, H, W)
    out = metrics.psnr(samples, target)
    assert out.shape == (3, 4)
    assert torch.allclose(out[2], metrics.psnr(samples[2], target[0]))
    with pytest.raises(ValueError, match="broadcast"):
        metrics.psnr(torch.rand(3, 4, 3, 16, 16), torch.rand(2, 4, 3, 16, 16))


def test_region_psnr_scores_only_the_masked_pixels_and_nan_for_an_empty_mask():
    target = torch.zeros(2, 3, 8, 8)
    pred = target.clone()
    pred[0, :, :4] = 0.1  # error only in the top half of frame 0
    mask = torch.zeros(2, 8, 8, dtype=torch.bool)
    mask[0, :4] = True  # frame 0: the erroneous half; frame 1: empty
    out = metrics.region_psnr(pred, target, mask)
    assert out[0].item() == pytest.approx(20.0)  # MSE 0.01 over the masked pixels
    assert torch.isnan(out[1])
    assert metrics.psnr(pred[:1], target[:1]).item() == pytest.approx(23.0103, abs=1e-3)  # whole frame: half the MSE


def test_sharpness_falls_under_blur_and_respects_the_mask():
    torch.manual_seed(0)
    sharp = (torch.rand(1, 3, 32, 32) > 0.5).float()
    blurred = torch.nn.functional.avg_pool2d(sharp, 3, stride=1, padding=1, count_include_pad=False)
    assert metrics.sharpness(blurred) < 0.6 * metrics.sharpness(sharp)
    flat = torch.full((1, 3, 32, 32), 0.5)
    assert metrics.sharpness(flat).item() == 0
    mask = torch.zeros(1, 32, 32, dtype=torch.bool)
    mask[:, :15] = True  # forward differences of row 15 reach row 16
    half = flat.clone()
    half[..., 16:, :] = sharp[..., 16:, :]  # texture only outside the mask
    assert metrics.sharpness(half, mask).item() == pytest.approx(0.0, abs=1e-12)
    assert torch.isnan(metrics.sharpness(half, torch.zeros_like(mask)))


def test_step_curves_leave_nan_scores_out_of_a_steps_mean():
    curves = metrics.StepCurves()
    curves.update("arm", torch.tensor([[10.0, float("nan")], [20.0, 30.0]]))
    np.testing.assert_allclose(curves.curve("arm"), [15.0, 30.0])
    assert curves.mean("arm") == pytest.approx(22.5)
