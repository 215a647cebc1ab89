"""``torchrun --nproc_per_node 2 training/train.py`` on CPU (gloo): rank-0 outputs, ranks in sync, budget resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bair_world.checkpoint import load_checkpoint, load_resume_state

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


DATA_COUNTS = {"train": 6, "validate": 2}  # sequences per split of the `data_root` fixture (conftest.py)


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "training" / "train.py"), "--no-progress", "--threads", "1", *args]
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_torchrun_two_cpu_processes_train_in_sync_and_only_rank0_writes(data_root, tmp_path):
    common = ["--preset", "tiny", "--data-root", str(data_root), "--log-dir", str(tmp_path), "--batch-size", "2"]
    done = torchrun(*common, "--name", "ddp", cwd=tmp_path)
    out = done.stdout
    assert "parameters identical on all 2 ranks: True" in out
    assert out.count("[train] epoch 2/2 step 4") == 1  # one logging process
    run = tmp_path / "ddp"
    _, info = load_checkpoint(run / "last")
    assert (info["epoch"], info["step"]) == (2, 4)
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]  # rank 1 wrote nothing anywhere else

    # stopped by the budget inside epoch 1, then resumed by torchrun: the same weights as never stopped
    torchrun(*common, "--name", "budget", "--max-minutes", "1e-7", cwd=tmp_path)
    partial = load_resume_state(tmp_path / "budget" / "last")["partial"]
    assert partial["batches"] == 1 and len(partial["rng"]) == 2  # both ranks' RNG states kept
    resumed = torchrun("--resume", str(tmp_path / "budget"), "--max-minutes", "none", cwd=tmp_path)
    assert "parameters identical on all 2 ranks: True" in resumed.stdout
    a = load_file(str(run / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "budget" / "last" / "model.safetensors"))
    for name in a:
        if "running_" not in name:  # BatchNorm statistics are rank 0's last batch (see params_in_sync)
            assert torch.equal(a[name], b[name]), name
    rows = [[r for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines()) if not r.get("partial")]
            for d in (run, tmp_path / "budget")]
    for key in ("loss", "mse", "kl", "val_psnr"):  # epoch means over both ranks, the stopped epoch included
        assert [r[key] for r in rows[1]] == pytest.approx([r[key] for r in rows[0]]), key
