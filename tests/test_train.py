"""The training pipeline: smoke run, outputs, resume, NaN stop, kill -9, training-step semantics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from bair_world.checkpoint import load_checkpoint, load_resume_state
from bair_world.data import DataError
from bair_world.models import SVG
from bair_world.models.config import model_preset
from bair_world.training import presets
from bair_world.training import train as train_module
from bair_world.training.data import EpochSampler
from bair_world.training.loss import SequenceLoss, gradient_difference, teacher_mask
from bair_world.training.step import TrainingDiverged
from bair_world.training.runlock import RunFolderError
from bair_world.training.train import train

REPO = Path(__file__).resolve().parents[1]


DATA_COUNTS = {"train": 6, "validate": 3}  # sequences per split of the `data_root` fixture (conftest.py)


def tiny(data_root: Path, log_dir: Path, name: str = "run", **changes):
    cfg = presets.training_preset("tiny").replace(data_root=data_root, log_dir=log_dir, name=name, progress=False,
                                         batch_size=2, val_sequences=3)
    return cfg.replace(**changes)


def weights(run_dir: Path, which: str = "last") -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / which / "model.safetensors"))


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_smoke_run_writes_checkpoints_metrics_plots_and_samples(data_root, tmp_path):
    summary = train(tiny(data_root, tmp_path))
    run = tmp_path / "run"
    assert summary["run_dir"] == str(run) and summary["epoch"] == 2 and summary["step"] == 4
    assert np.isfinite(summary["val_psnr"]) and np.isfinite(summary["baseline_psnr"])
    model, info = load_checkpoint(run / "last")
    assert info["step"] == 4 and info["epoch"] == 2 and "val_psnr" in info["metrics"]
    assert load_resume_state(run / "last")["optimizer"]["state"]  # Adam moments saved
    best, best_info = load_checkpoint(run / "best")
    assert best_info["metrics"]["val_psnr"] == pytest.approx(summary["best_val_psnr"])
    lines = (run / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,step,loss,mse,kl,beta,tf_ratio,val_psnr,baseline_psnr,seq_per_s")
    assert len(lines) == 3
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and [r["step"] for r in rows] == [2, 4]
    assert rows[0]["tf_ratio"] == pytest.approx(0.9) and rows[1]["tf_ratio"] == pytest.approx(0.8)
    assert rows[1]["beta"] == pytest.approx(1e-4) and all(r["seq_per_s"] > 0 for r in rows)
    for png in ("loss.png", "psnr.png", "schedules.png"):
        assert (run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_0001.gif", "epoch_0002.gif"]
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert json.loads((run / "train_config.json").read_text())["model"]["z_dim"] == model.cfg.z_dim


class NaNAfter(SequenceLoss):
    """SequenceLoss whose loss turns NaN from the ``limit``-th call on (a diverging run)."""

    calls = 0
    limit = 3

    def forward(self, *args):
        loss, mse, kl = super().forward(*args)
        NaNAfter.calls += 1
        if NaNAfter.calls >= NaNAfter.limit:
            loss = loss * float("nan")
        return loss, mse, kl


def test_nan_stops_with_step_keeps_last_good_checkpoint_and_resume_matches_uninterrupted(
        data_root, tmp_path, monkeypatch):
    train(tiny(data_root, tmp_path, "straight"))
    cfg = tiny(data_root, tmp_path, "broken")
    monkeypatch.setattr(train_module, "SequenceLoss", NaNAfter)
    NaNAfter.calls = 0
    with pytest.raises(TrainingDiverged, match="step 3 .*epoch 2.*last good checkpoint"):
        train(cfg)
    run = tmp_path / "broken"
    _, info = load_checkpoint(run / "last")
    assert info["epoch"] == 1 and info["step"] == 2
    monkeypatch.setattr(train_module, "SequenceLoss", SequenceLoss)
    summary = train(cfg.replace(resume=run))
    assert summary["epoch"] == 2 and summary["step"] == 4
    assert_same_weights(weights(run), weights(tmp_path / "straight"))
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    straight = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in ("loss", "beta", "tf_ratio", "val_psnr"):
        assert [r[key] for r in rows] == pytest.approx([r[key] for r in straight]), key


def test_resume_of_a_finished_run_with_more_epochs_continues_from_its_step(data_root, tmp_path):
    train(tiny(data_root, tmp_path, epochs=1))
    summary = train(tiny(data_root, tmp_path, epochs=2, resume=tmp_path / "run"))
    assert summary["epoch"] == 2 and summary["step"] == 4
    assert len((tmp_path / "run" / "metrics.csv").read_text().splitlines()) == 3


def test_bad_inputs_fail_clearly(data_root, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        train(tiny(tmp_path / "nowhere", tmp_path))
    with pytest.raises(RunFolderError, match="not a train.py run folder"):
        train(tiny(data_root, tmp_path, resume=tmp_path / "empty"))
    with pytest.raises((DataError, ValueError), match="42"):  # validation sequences are only 30 long
        train(tiny(data_root, tmp_path, val_n_future=40))


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_finishes_without_corruption(data_root, tmp_path):
    args = [sys.executable, str(REPO / "training" / "train.py"), "--preset", "tiny", "--data-root", str(data_root),
            "--log-dir", str(tmp_path), "--name", "k", "--epochs", "40", "--batch-size", "2", "--no-progress",
            "--sample-every", "0", "--threads", "1"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    config = tmp_path / "k" / "last" / "config.json"
    while time.time() < deadline and proc.poll() is None:
        if config.exists() and json.loads(config.read_text())["epoch"] >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stdout.read()
    time.sleep(0.3)  # somewhere inside a later epoch or checkpoint write
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(config.read_text())["epoch"]
    assert 2 <= killed_at < 40
    done = subprocess.run([sys.executable, str(REPO / "training" / "train.py"), "--resume", str(tmp_path / "k"),
                           "--no-progress", "--threads", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    _, info = load_checkpoint(tmp_path / "k" / "last")
    assert info["epoch"] == 40 and info["step"] == 80
    rows = [json.loads(x) for x in (tmp_path / "k" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 41))


# -- the training step ------------------------------------------------------------------------------

def _per_step_loss(model, frames, conds, teacher, n_past):
    """The training loss written as the plain per-step loop of the module docstring (the reference)."""
    state, x_in = model.init_state(frames.shape[0]), frames[:, 0]
    mse = kl = 0.0
    for t in range(1, frames.shape[1]):
        out = model.step(state, x_in, conds[:, t - 1], x_next=frames[:, t])
        state = out.state
        mse, kl = mse + F.mse_loss(out.frame, frames[:, t]), kl + out.kl.mean()
        if t < frames.shape[1] - 1:
            x_in = frames[:, t] if (t < n_past or teacher[t + 1]) else out.frame
    return mse / (frames.shape[1] - 1), kl / (frames.shape[1] - 1)


@pytest.mark.parametrize("pattern", ["teacher", "free", "mixed"])
@pytest.mark.parametrize("variant", [{}, {"skip": "last_context", "residual": False, "prior": "learned"}])
def test_sequence_loss_equals_the_per_step_loop(pattern, variant):
    """Encoding each frame once and decoding steps in batches changes nothing but BatchNorm's batch
    statistics: in eval mode (running statistics) loss, KL and gradients equal the per-step loop,
    whatever is fed back (context as ground truth, then teacher-forced or the model's own frames)."""
    torch.manual_seed(0)
    model = SVG(replace(model_preset("tiny", n_past=2), **variant)).eval()
    frames, conds = torch.rand(3, 7, 3, 64, 64), torch.randn(3, 7, 7)
    teacher = {"teacher": torch.ones(7, dtype=torch.bool), "free": torch.zeros(7, dtype=torch.bool),
               "mixed": torch.tensor([1, 0, 1, 0, 0, 1, 0], dtype=torch.bool)}[pattern]
    torch.manual_seed(1)
    loss, mse, kl = SequenceLoss(model, n_past=2)(frames, conds, torch.tensor(0.5), teacher)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch.manual_seed(1)
    ref_mse, ref_kl = _per_step_loss(model, frames, conds, teacher, n_past=2)
    (ref_mse + 0.5 * ref_kl).backward()
    assert torch.allclose(mse, ref_mse, rtol=1e-5, atol=1e-7) and torch.allclose(kl, ref_kl, rtol=1e-5, atol=1e-7)
    for g, p in zip(grads, model.parameters()):
        assert torch.allclose(g, p.grad, rtol=1e-4, atol=1e-7)


def test_blur_losses_add_to_the_objective():
    """l1_weight and gdl_weight add L1 and gradient-difference terms; a blurred frame has a positive GDL."""
    torch.manual_seed(0)
    model = SVG(model_preset("tiny", n_past=2)).eval()
    frames, conds, teacher = torch.rand(2, 5, 3, 64, 64), torch.randn(2, 5, 7), torch.ones(5, dtype=torch.bool)
    torch.manual_seed(1)
    base, mse, kl = SequenceLoss(model, 2)(frames, conds, torch.tensor(0.0), teacher)
    torch.manual_seed(1)
    more, mse2, _ = SequenceLoss(model, 2, l1_weight=1.0, gdl_weight=1.0)(frames, conds, torch.tensor(0.0), teacher)
    assert torch.allclose(mse, mse2) and more > base + 0.1
    sharp = torch.zeros(1, 1, 8, 8)
    sharp[..., 4:] = 1.0
    blurred = F.avg_pool2d(F.pad(sharp, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    assert gradient_difference(sharp, sharp) == 0 and gradient_difference(blurred, sharp) > 0.05


def test_teacher_mask_modes_and_sampler_shards_are_deterministic():
    import random

    seq = teacher_mask(0.5, 8, "sequence", random.Random(1))
    assert seq.all() or not seq.any()
    steps = [teacher_mask(0.5, 50, "step", random.Random(2)) for _ in range(2)]
    assert torch.equal(steps[0], steps[1]) and 0 < steps[0].sum() < 50
    shards = []
    for rank in range(2):
        s = EpochSampler(7, 6, seed=3, rank=rank, world_size=2)
        s.set_epoch(4)
        shards.append(list(s))
        assert list(s) == shards[-1] and len(shards[-1]) == 6
    merged = sorted(shards[0] + shards[1])
    assert set(merged) == set(range(7)) and max(merged.count(i) for i in range(7)) <= 2
    s.set_epoch(5)
    assert list(s) != shards[1]
