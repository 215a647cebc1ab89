"""Optional LPIPS and FVD: the plumbing on random-weight networks (never real LPIPS/FVD values),
weights files found by path or $BAIR_WORLD_WEIGHTS, checksums, the one-line hint when absent."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bair_world import perceptual
from bair_world.perceptual import FVD, I3D, LPIPS, frechet_distance


def frames(seed: int, shape=(2, 3, 64, 64)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def lpips():
    torch.manual_seed(0)
    model = LPIPS()
    for lin in model.lins:  # the real heads are non-negative; random ones made so too
        lin.model[1].weight.data.abs_()
    return model


def test_lpips_is_zero_for_identical_frames_and_positive_for_different(lpips):
    a, b = frames(0), frames(1)
    assert lpips(a, a).shape == (2,) and torch.allclose(lpips(a, a), torch.zeros(2), atol=1e-7)
    assert (lpips(a, b) > 0).all() and torch.allclose(lpips(a, b), lpips(b, a))


def test_lpips_loads_the_users_weights_files_and_checks_them(lpips, tmp_path, monkeypatch):
    backbone = {f"features.{k}": v for k, v in lpips.features.state_dict().items()}
    backbone["classifier.1.weight"] = torch.zeros(2, 2)  # torchvision's file holds the classifier too
    torch.save(backbone, tmp_path / "alexnet-owt-00000000.pth")  # a hub-style name whose hash cannot match
    with pytest.raises(ValueError, match="does not match"):
        LPIPS.from_weights(tmp_path / "alexnet-owt-00000000.pth", tmp_path / "alex.pth")
    torch.save(backbone, tmp_path / perceptual.LPIPS_BACKBONE.replace("7be5be79", "x"))
    torch.save({f"lin{i}.model.1.weight": lin.model[1].weight for i, lin in enumerate(lpips.lins)},
               tmp_path / perceptual.LPIPS_HEADS)
    model = LPIPS.from_weights(tmp_path / perceptual.LPIPS_BACKBONE.replace("7be5be79", "x"),
                               tmp_path / perceptual.LPIPS_HEADS)
    a, b = frames(2), frames(3)
    assert torch.allclose(model(a, b), lpips(a, b))
    assert model.sha256["heads"] == perceptual.sha256(tmp_path / perceptual.LPIPS_HEADS)
    with pytest.raises(ValueError, match="does not match"):
        LPIPS.from_weights(tmp_path / perceptual.LPIPS_BACKBONE.replace("7be5be79", "x"),
                           tmp_path / perceptual.LPIPS_HEADS, heads_sha256="0" * 64)


def test_absent_weights_say_in_one_line_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.delenv(perceptual.WEIGHTS_ENV, raising=False)
    with pytest.raises(perceptual.WeightsMissing) as err:
        LPIPS.from_weights()
    assert "\n" not in str(err.value) and "download.pytorch.org" in str(err.value)
    monkeypatch.setenv(perceptual.WEIGHTS_ENV, str(tmp_path))
    with pytest.raises(perceptual.WeightsMissing, match="pytorch-i3d"):
        FVD.from_weights()


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 3))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-9)
    shifted = frechet_distance(a, a + np.array([2.0, 0, 0]))
    assert shifted == pytest.approx(4.0, rel=1e-6)  # |mu_a - mu_b|^2, same covariance
    expected = 4 * np.trace(np.cov(a, rowvar=False)) + ((2 * a.mean(0)) ** 2).sum()  # (3-1)^2 tr S + |2 mu|^2
    assert frechet_distance(a, 3 * a) == pytest.approx(expected, rel=1e-6)


def test_fvd_is_zero_for_the_same_videos_and_positive_for_different(tmp_path, monkeypatch):
    torch.manual_seed(0)
    i3d = I3D()
    fvd = FVD(i3d, size=16, batch_size=4)  # tiny clips: the plumbing, not FVD values (16 px: 3x faster than 32)
    real, fake = frames(4, (3, 4, 3, 64, 64)), frames(5, (3, 4, 3, 64, 64))
    assert fvd.features(real).shape == (3, 400)
    assert fvd(real, real) == pytest.approx(0, abs=1e-6)
    assert fvd(real, fake) > 0
    torch.save(i3d.state_dict(), tmp_path / perceptual.I3D_WEIGHTS)
    monkeypatch.setenv(perceptual.WEIGHTS_ENV, str(tmp_path))
    loaded = FVD.from_weights(size=16)
    assert loaded.sha256 == perceptual.sha256(tmp_path / perceptual.I3D_WEIGHTS)
    assert loaded(real, fake) == pytest.approx(fvd(real, fake), rel=1e-6)


def test_the_example_scores_a_checkpoint_and_copy_last_with_the_users_weights(data_root, tmp_path, monkeypatch,
                                                                               capsys):
    from helpers import load_script, make_tiny_checkpoint

    example = load_script("examples", "perceptual_metrics")
    monkeypatch.setenv(perceptual.WEIGHTS_ENV, str(tmp_path / "weights"))
    argv = ["--checkpoint", str(make_tiny_checkpoint(tmp_path / "tiny")), "--data-root", str(data_root),
            "--split", "validate", "--max-sequences", "2", "--frames", "4", "--fvd-size", "16"]
    assert example.main(argv) == 2  # no weights yet: the one-line hint
    assert "download.pytorch.org" in capsys.readouterr().err
    (tmp_path / "weights").mkdir()
    torch.manual_seed(0)
    model = LPIPS()
    torch.save({f"features.{k}": v for k, v in model.features.state_dict().items()},
               tmp_path / "weights" / perceptual.LPIPS_BACKBONE.replace("7be5be79", "x"))
    torch.save({f"lin{i}.model.1.weight": lin.model[1].weight.abs() for i, lin in enumerate(model.lins)},
               tmp_path / "weights" / perceptual.LPIPS_HEADS)
    torch.save(I3D().state_dict(), tmp_path / "weights" / perceptual.I3D_WEIGHTS)
    argv += ["--lpips-backbone", str(tmp_path / "weights" / perceptual.LPIPS_BACKBONE.replace("7be5be79", "x"))]
    assert example.main(argv) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[2:]}
    assert set(rows) == {"model", "copy-last"} and all(float(v) >= 0 for r in rows.values() for v in r)
