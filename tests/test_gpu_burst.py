"""The GPU burst (training/gpu_burst.py) on the CPU: pack a run, resume it as the device would, bring the
checkpoint back in parts, and the run goes on here; corrupt parts and a run that moved on are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import load_script

from bair_world.checkpoint import load_checkpoint
from bair_world.training import presets
from bair_world.training.train import train

DATA_COUNTS = {"train": 4, "validate": 2}


def tiny(data_root: Path, log_dir: Path, **changes):
    return presets.training_preset("tiny").replace(data_root=data_root, log_dir=log_dir, name="run", progress=False,
                                                  batch_size=2, val_sequences=2, sample_every=0, **changes)


def step(checkpoint: Path) -> int:
    return json.loads((checkpoint / "config.json").read_text())["step"]


@pytest.fixture
def burst(monkeypatch):
    script = load_script("training", "gpu_burst")
    monkeypatch.setattr(script, "PART_BYTES", 200_000)  # the tiny checkpoint comes back in several parts
    return script


def test_pack_train_unpack_round_trip_and_the_run_resumes_here(data_root, tmp_path, burst):
    train(tiny(data_root, tmp_path, epochs=1))
    run, out = tmp_path / "run", tmp_path / "out"
    assert burst.main(["pack", str(run), "--no-wheels", "--burst-dir", str(tmp_path / "b")]) == 0
    assert step(tmp_path / "b" / "run" / "last") == 2 and not (tmp_path / "b" / "run" / "snapshots").exists()
    rc = burst.main(["train", "--allow-cpu", "--minutes", "5", "--batch-size", "2", "--out", str(out),
                     "--burst-dir", str(tmp_path / "b"), "--epochs", "2", "--threads", "1"])
    assert rc == 0
    parts = sorted(out.glob("burst.tar.*"))
    assert len(parts) >= 2 and all(p.stat().st_size <= 200_000 for p in parts)
    assert burst.main(["unpack", str(out), str(run)]) == 0
    assert step(run / "last") == 4 and step(run / "last.before-burst") == 2
    assert [json.loads(r)["step"] for r in (run / "metrics.jsonl").read_text().splitlines()] == [2, 4]
    load_checkpoint(run / "last")  # a verified checkpoint (weights and config agree)
    assert train(tiny(data_root, tmp_path, epochs=3, resume=run))["step"] == 6


def test_corrupt_parts_and_a_run_that_moved_on_are_refused_and_leave_the_run_as_it_was(
        data_root, tmp_path, burst, capsys):
    train(tiny(data_root, tmp_path, epochs=1))
    run, out = tmp_path / "run", tmp_path / "out"
    burst.pack(run, wheels=False, burst=tmp_path / "b")
    burst.write_parts(tmp_path / "b" / "run", out)  # as if the device trained nothing
    first = sorted(out.glob("burst.tar.*"))[0]
    good = first.read_bytes()
    first.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    assert burst.main(["unpack", str(out), str(run)]) == 2
    assert "SHA-256" in capsys.readouterr().err and step(run / "last") == 2 and not (run / "burst.partial").exists()
    first.write_bytes(good)
    train(tiny(data_root, tmp_path, epochs=2, resume=run))  # trained here since the pack
    assert burst.main(["unpack", str(out), str(run)]) == 2
    assert "not the packed 2" in capsys.readouterr().err and step(run / "last") == 4


def test_train_without_cuda_or_a_pack_says_so(tmp_path, burst, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert burst.main(["train", "--out", str(tmp_path / "o"), "--burst-dir", str(tmp_path / "b")]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert burst.main(["train", "--allow-cpu", "--out", str(tmp_path / "o"), "--burst-dir", str(tmp_path / "b")]) == 2
    assert "no packed run" in capsys.readouterr().err
    assert burst.main(["pack", str(tmp_path / "nothing"), "--no-wheels", "--burst-dir", str(tmp_path / "b")]) == 2
    assert "not a resumable run folder" in capsys.readouterr().err
