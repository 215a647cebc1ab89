"""training/evaluate.py on a tiny random-weight checkpoint and a tiny folder dataset made in the test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_sequence

from bair_world.checkpoint import save_checkpoint
from bair_world.data import DataError
from bair_world.data.bair_folder import write_sequence
from bair_world.models import SVG, model_preset
from bair_world.seeding import latent_generators
from bair_world.training import evaluate as ev
from bair_world.world_model import WorldModel

N_SEQ, N_PAST, N_FUTURE = 5, 2, 3
FAST = dict(n_future=N_FUTURE, device="cpu", progress=False)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "ckpt", SVG(model_preset("tiny")), step=7, epoch=1)
    sequences = [make_sequence(i, length=N_PAST + N_FUTURE + 1) for i in range(N_SEQ)]
    for i, seq in enumerate(sequences):  # natural sort: traj_0/{0,1}, traj_1/{2,3}, traj_2/{4}
        write_sequence(root / "data" / "test" / f"traj_{i // 2}" / str(i), *seq)
    return ckpt, root / "data", sequences


def test_every_sequence_is_scored_and_baseline_matches_numpy(setup):
    ckpt, data, sequences = setup
    report = ev.evaluate(ckpt, data, batch_size=2, **FAST)  # 5 sequences: last batch of 1 is kept
    assert report["data"]["sequences"] == N_SEQ
    frames = np.stack([s[0] for s in sequences]).astype(np.float64) / 255.0  # (N, T, 64, 64, 3)
    last = frames[:, N_PAST - 1]  # (N, 64, 64, 3)
    mse = ((frames[:, N_PAST:N_PAST + N_FUTURE] - last[:, None]) ** 2).mean(axis=(2, 3, 4))  # (N, S)
    expected = (10 * np.log10(1 / mse)).mean(axis=0)  # (S,)
    # the dataset hands out float32 frames (k/255 rounded to ~3e-8), hence 1e-5 dB and not exact
    np.testing.assert_allclose(report["baseline"]["psnr"]["per_step"], expected, rtol=0, atol=1e-5)
    assert report["baseline"]["psnr"]["mean"] == pytest.approx(expected.mean(), abs=1e-5)
    for part in ("model", "best_of_n", "baseline"):
        for name in ("psnr", "finn_psnr", "ssim"):
            assert len(report[part][name]["per_step"]) == N_FUTURE
    assert report["protocol"]["seed"] == 0 and report["checkpoint"]["step"] == 7
    assert np.mean(report["per_sequence_psnr"]["model"]) == pytest.approx(report["model"]["psnr"]["mean"])


def test_model_psnr_equals_a_direct_rollout(setup):
    skm = pytest.importorskip("skimage.metrics")
    ckpt, data, sequences = setup
    report = ev.evaluate(ckpt, data, batch_size=4, seed=3, **FAST)
    model, _ = __import__("bair_world.checkpoint", fromlist=["x"]).load_checkpoint(ckpt)
    frames = torch.from_numpy(np.stack([s[0] for s in sequences])).permute(0, 1, 4, 2, 3).float() / 255  # (N,T,3,64,64)
    conds = torch.from_numpy(np.concatenate([np.stack([s[1] for s in sequences]),
                                             np.stack([s[2] for s in sequences])], -1))  # (N, T, 7)
    pred = WorldModel(model).rollout(frames, conds, N_FUTURE, latent_generators(3, range(N_SEQ), 0))
    pred = pred.clamp(0, 1).numpy()
    target = frames[:, N_PAST:N_PAST + N_FUTURE].numpy()
    ref = [[skm.peak_signal_noise_ratio(target[i, t], pred[i, t], data_range=1.0) for t in range(N_FUTURE)]
           for i in range(N_SEQ)]
    np.testing.assert_allclose(report["model"]["psnr"]["per_step"], np.mean(ref, axis=0), atol=1e-4)


def test_seeded_and_independent_of_batch_size(setup):
    ckpt, data, _ = setup
    a = ev.evaluate(ckpt, data, batch_size=2, samples=2, **FAST)
    b = ev.evaluate(ckpt, data, batch_size=5, samples=2, **FAST)
    c = ev.evaluate(ckpt, data, batch_size=2, samples=2, seed=1, **FAST)
    np.testing.assert_allclose(a["model"]["psnr"]["per_step"], b["model"]["psnr"]["per_step"], atol=1e-4)
    assert a["model"]["psnr"]["per_step"] != c["model"]["psnr"]["per_step"]
    # best of N picks, per sequence, the draw with the best mean PSNR: never below the first draw
    assert a["best_of_n"]["psnr"]["mean"] >= a["model"]["psnr"]["mean"]


def test_cli_writes_json_plot_and_table(setup, tmp_path, capsys):
    ckpt, data, _ = setup
    out = tmp_path / "eval"
    argv = ["--checkpoint", str(ckpt), "--data-root", str(data), "--n-future", str(N_FUTURE), "--samples", "2",
            "--device", "cpu", "--no-progress", "--max-sequences", "3", "--out", str(out)]
    assert ev.main(argv) == 0
    text = capsys.readouterr().out
    assert "copy-last" in text and "best-of-2" in text and "PSNR (dB)" in text
    report = json.loads((out / ev.JSON_FILE).read_text())
    assert report["data"]["sequences"] == 3 and report["data"]["sequences_in_split"] == N_SEQ
    assert report["protocol"]["n_future"] == N_FUTURE and report["data"]["split"] == "test"
    assert (out / ev.PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.iterdir()) == sorted([ev.JSON_FILE, ev.PLOT_FILE])  # no temp files


def test_bad_requests_name_the_problem(setup, tmp_path, capsys):
    ckpt, data, _ = setup
    with pytest.raises(DataError, match="actions.csv"):  # sequences have 6 frames, 2 + 10 asked
        ev.evaluate(ckpt, data, n_future=10, device="cpu", progress=False)
    with pytest.raises(ValueError, match="samples"):
        ev.evaluate(ckpt, data, samples=0)
    with pytest.raises(DataError, match="validate"):
        ev.evaluate(ckpt, data, split="validate", **FAST)
    assert ev.main(["--checkpoint", str(tmp_path / "missing"), "--data-root", str(data), "--no-progress"]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert ev.main(["--checkpoint", str(ckpt), "--data-root", str(data), "--n-past", "3", "--no-progress"]) == 2
    assert "n_past=3 differs from the checkpoint's n_past=2" in capsys.readouterr().err


def test_real_bair_folder_28_predicted_frames_best_of_n_and_outputs(setup, real_bair_root, tmp_path, capsys):
    ckpt, _, _ = setup
    out = tmp_path / "real"
    argv = ["--checkpoint", str(ckpt), "--data-root", str(real_bair_root), "--n-future", "28", "--samples", "3",
            "--device", "cpu", "--no-progress", "--out", str(out)]
    assert ev.main(argv) == 0
    text = capsys.readouterr().out
    assert "best-of-3" in text and "t=29" in text
    report = json.loads((out / ev.JSON_FILE).read_text())
    assert report["data"]["split"] == "test" and report["data"]["sequences"] == 1
    assert len(report["model"]["psnr"]["per_step"]) == 28
    assert report["best_of_n"]["psnr"]["mean"] >= report["model"]["psnr"]["mean"]
    assert "arm_psnr" not in report["model"] and "arm_psnr" not in report["protocols"]["28"]  # no labels
    seq = real_bair_root / "test" / "GT_175" / "175"
    import cv2

    frames = np.stack([cv2.cvtColor(cv2.imread(str(seq / f"{t}.png")), cv2.COLOR_BGR2RGB) for t in range(30)])
    frames = frames.astype(np.float64) / 255.0  # (30, 64, 64, 3)
    mse = ((frames[2:] - frames[1]) ** 2).mean(axis=(1, 2, 3))  # (28,) copy-last-frame error
    expected = np.where(mse > 0, 10 * np.log10(1 / np.maximum(mse, 1e-300)), 100.0)
    np.testing.assert_allclose(report["baseline"]["psnr"]["per_step"], np.minimum(expected, 100.0), atol=1e-5)
    assert (out / ev.PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_options_evaluate_the_bundled_model_on_the_embedded_data_into_the_working_directory(
        tmp_path, monkeypatch, capsys):
    import bair_world
    import bair_world.data.default_data as default_data

    root = tmp_path / "embedded"
    for i in range(2):  # the full-episode protocol needs 2 + 28 frames
        write_sequence(root / "test" / "traj_0" / str(i), *make_sequence(50 + i, length=30))
    monkeypatch.setattr(default_data, "default_dataset_root", lambda *a, **k: root)
    package = Path(bair_world.__file__).resolve().parent
    before = sorted(package.rglob("*"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert ev.main(["--no-progress", "--device", "cpu"]) == 0
    out = work / "runs" / "eval-default-test"
    report = json.loads((out / ev.JSON_FILE).read_text())
    assert report["checkpoint"]["path"] == str(package / "checkpoints" / "default")
    assert report["data"]["root"] == str(root.resolve()) and report["data"]["sequences"] == 2
    assert report["protocol"]["n_past"] == 2 and report["protocol"]["n_future"] == 28
    assert sorted(report["protocols"]) == ["10", "28"]  # the seed's 2 -> 10 beside the episode's 2 -> 28
    assert report["protocol"]["samples"] == 1 and "copy-last" in capsys.readouterr().out
    assert sorted(package.rglob("*")) == before  # nothing written into the installed package


def test_region_psnr_and_sharpness_on_labelled_pushing_world_data(setup, tmp_path):
    """Sequences written by the pushing world carry labels: PSNR per region (union of the region in
    recorded frames t-1 and t) and the sharpness ratio appear, the baseline's match numpy, and the
    2 -> 10 protocol is the first 10 steps of the 2 -> 28 one."""
    from bair_world.data.bair_folder import read_labels
    from bair_world.sim import rollout

    ckpt, _, _ = setup
    root = tmp_path / "labelled"
    for i in range(2):
        r = rollout(i, labels=True)
        write_sequence(root / "test" / "traj_0" / str(i), r.frames, r.actions, r.positions, labels=r.labels)
    report = ev.evaluate(ckpt, root, n_future=28, device="cpu", progress=False)
    for name in ("arm_psnr", "objects_psnr", "static_psnr", "sharpness", "moving_sharpness"):
        assert len(report["model"][name]["per_step"]) == 28 and len(report["baseline"][name]["per_step"]) == 28
    seq = root / "test" / "traj_0" / "0"
    frames = np.stack([__import__("cv2").imread(str(seq / f"{t}.png"))[:, :, ::-1] for t in range(30)]) / 255.0
    labels = read_labels(seq)
    arm = (labels[2:] == 1) | (labels[1:-1] == 1)  # (28, 64, 64)
    err = ((frames[2:] - frames[1]) ** 2).mean(-1)  # (28, 64, 64) copy-last squared error, channel mean
    first_seq = 10 * np.log10(1 / (err * arm).sum((1, 2)) * arm.sum((1, 2)))
    r1 = rollout(1, labels=True)
    arm1 = (r1.labels[2:] == 1) | (r1.labels[1:-1] == 1)
    f1 = r1.frames.astype(np.float64) / 255.0
    second_seq = 10 * np.log10(1 / (((f1[2:] - f1[1]) ** 2).mean(-1) * arm1).sum((1, 2)) * arm1.sum((1, 2)))
    np.testing.assert_allclose(report["baseline"]["arm_psnr"]["per_step"], (first_seq + second_seq) / 2, atol=1e-4)
    np.testing.assert_allclose(report["baseline"]["sharpness"]["per_step"], 1.0, atol=0.2)
    short, full = report["protocols"]["10"], report["protocols"]["28"]
    assert short["psnr"] == pytest.approx(np.mean(report["model"]["psnr"]["per_step"][:10]))
    assert full["psnr"] == pytest.approx(report["model"]["psnr"]["mean"])
    assert full["arm_psnr_last_step"] == pytest.approx(report["model"]["arm_psnr"]["per_step"][-1])
    assert full["baseline_arm_psnr"] < full["baseline_static_psnr"]  # copy-last misses the moving arm


def test_default_out_names_a_run_checkpoint_by_run_and_checkpoint(tmp_path):
    run = tmp_path / "x"
    (run / "best").mkdir(parents=True)
    (run / "train_config.json").write_text("{}")
    assert ev.default_out(run / "best", "validate") == Path("runs/eval-x-best-validate")
    assert ev.default_out(tmp_path / "ckpt", "test") == Path("runs/eval-ckpt-test")


def test_precision_choices_are_the_model_cores(capsys):
    import typing

    from bair_world.world_model import PRECISIONS

    assert typing.get_args(typing.get_type_hints(ev.EvalConfig)["precision"]) == tuple(PRECISIONS)
    with pytest.raises(SystemExit):
        ev.main(["--help"])
    assert "--precision {float32,bfloat16,float16}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        ev.main(["--precision", "int8"])
    assert "invalid choice: 'int8'" in capsys.readouterr().err
