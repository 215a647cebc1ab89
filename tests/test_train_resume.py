"""Stopping and resuming training: the wall-clock budget, corrupt and half-swapped `last` checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bair_world.checkpoint import CheckpointError, load_checkpoint, load_resume_state
from bair_world.training import presets
from bair_world.training.train import main, parse_config, train


DATA_COUNTS = {"train": 4, "validate": 2}  # sequences per split of the `data_root` fixture (conftest.py)


@pytest.fixture(scope="module")
def straight(data_root, tmp_path_factory) -> Path:
    """An uninterrupted tiny run (2 epochs x 2 steps) to compare stopped-and-resumed runs with."""
    log_dir = tmp_path_factory.mktemp("straight")
    train(tiny(data_root, log_dir, "straight"))
    return log_dir / "straight"


def tiny(data_root: Path, log_dir: Path, name: str = "run", **changes):
    cfg = presets.training_preset("tiny").replace(data_root=data_root, log_dir=log_dir, name=name, progress=False,
                                         batch_size=2, val_sequences=2, sample_every=0)
    return cfg.replace(**changes)


def rows(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a / "last" / "model.safetensors")), load_file(str(b / "last" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_budget_stops_inside_an_epoch_and_resumes_exactly(data_root, straight, tmp_path):
    tiny_budget = 1e-7  # minutes: exceeded by the first optimiser step
    summary = train(tiny(data_root, tmp_path, max_minutes=tiny_budget))
    run = tmp_path / "run"
    assert summary["stopped_by_budget"] and summary["step"] == 1 and summary["epoch"] == 0
    _, info = load_checkpoint(run / "last")
    assert info["step"] == 1 and info["epoch"] == 0 and "val_psnr" in info["metrics"]  # final validation
    assert (run / "best" / "model.safetensors").is_file()
    partial = load_resume_state(run / "last")["partial"]
    assert partial["epoch"] == 0 and partial["batches"] == 1 and len(partial["rng"]) == 1
    # the unfinished epoch is recorded as such (its validation at the stop, plots, the text log) ...
    (stop,) = rows(run)
    assert stop["partial"] and stop["stopped"] == "budget" and (stop["epoch"], stop["step"]) == (1, 1)
    assert (stop["batches"], stop["epoch_batches"]) == (1, 2) and stop["val_psnr"] == info["metrics"]["val_psnr"]
    assert "partial" in (run / "metrics.csv").read_text().splitlines()[0]
    assert all((run / plot).is_file() for plot in ("loss.png", "psnr.png", "schedules.png"))
    assert "time budget of 1e-07 min reached after step 1" in (run / "train.log").read_text()

    # a resumed run gets a fresh budget: it stops again after one step, now at the end of epoch 1
    summary = train(tiny(data_root, tmp_path, max_minutes=tiny_budget, resume=run))
    assert summary["stopped_by_budget"] and (summary["step"], summary["epoch"]) == (2, 1)
    assert "partial" not in load_resume_state(run / "last")
    # the budget is lifted on the command line of the resume; the run finishes
    cfg = parse_config(["--resume", str(run), "--max-minutes", "none", "--no-progress"])
    assert cfg.max_minutes is None and cfg.resume == run
    summary = train(cfg)
    assert not summary["stopped_by_budget"] and (summary["step"], summary["epoch"]) == (4, 2)

    assert_same_weights(run, straight)  # stopped twice, resumed twice == never stopped
    got, want = rows(run), rows(straight)
    assert [(r["epoch"], r["step"]) for r in got if r.get("partial")] == [(1, 1)]  # ... and kept
    got = [r for r in got if not r.get("partial")]  # ... beside the complete epochs of the uninterrupted run
    assert [r["epoch"] for r in got] == [1, 2] and [r["step"] for r in got] == [2, 4]
    for key in ("loss", "mse", "kl", "beta", "tf_ratio", "val_psnr"):
        assert [r[key] for r in got] == pytest.approx([r[key] for r in want]), key


def test_generous_budget_changes_nothing(data_root, straight, tmp_path):
    summary = train(tiny(data_root, tmp_path, max_minutes=60.0))
    assert not summary["stopped_by_budget"] and summary["step"] == 4
    assert_same_weights(tmp_path / "run", straight)


def test_budget_must_be_positive():
    with pytest.raises(ValueError, match="max_minutes"):
        presets.training_preset("tiny").replace(max_minutes=0.0)
    with pytest.raises(SystemExit):
        parse_config(["--max-minutes", "-1"])


def test_corrupt_last_checkpoint_names_the_file_on_resume(data_root, tmp_path, capsys):
    train(tiny(data_root, tmp_path, epochs=1))
    weights = tmp_path / "run" / "last" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated by a full disk, say
    with pytest.raises(CheckpointError, match="model.safetensors"):
        train(tiny(data_root, tmp_path, resume=tmp_path / "run"))
    assert main(["--resume", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("train.py: error: ") and str(weights) in err and len(err.splitlines()) == 1


def test_resume_falls_back_to_the_backup_of_an_interrupted_checkpoint_swap(data_root, straight, tmp_path):
    train(tiny(data_root, tmp_path, max_minutes=1e-7))  # stops after step 1
    run = tmp_path / "run"
    # A save killed between its two renames (systems without an atomic exchange) leaves only the
    # backup; the checkpoint module promises loading falls back to it, so resume must use it.
    (run / "last").rename(run / ".last.previous")
    with pytest.warns(UserWarning, match="previous checkpoint"):
        summary = train(tiny(data_root, tmp_path, resume=run, max_minutes=None))
    assert (summary["epoch"], summary["step"]) == (2, 4)
    assert_same_weights(run, straight)


@pytest.mark.parametrize("partial", [None, {"epoch": 4, "batches": 1, "sums": [], "rng": []}])
def test_snapshots_are_saved_beside_best_and_last_with_the_same_record(tmp_path, partial):
    from bair_world.models import SVG, model_preset
    from bair_world.training.resume import RunState, save_checkpoints

    model = SVG(model_preset("tiny"))
    optimizer = torch.optim.Adam(model.parameters())
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    row, data_info = {"epoch": 4, "val_psnr": 20.5, "note": "not a number"}, {"root": "x", "seed": 0}
    for epoch in (3, 4):  # snapshot_every=2: after epoch 4 only, and never inside an epoch (a budget stop)
        state = RunState(epoch=epoch, step=10 * epoch, partial=partial)
        save_checkpoints(tmp_path, model, optimizer, scaler, state, row, [], improved=False, data_info=data_info,
                         snapshot_every=2)
    snapshots = sorted(p.name for p in (tmp_path / "snapshots").iterdir()) if (tmp_path / "snapshots").exists() else []
    assert snapshots == ([] if partial else ["step-000040"])
    if not partial:
        record = lambda p: {k: v for k, v in json.loads((p / "config.json").read_text()).items()  # noqa: E731
                            if k in ("metrics", "data", "step", "epoch")}
        assert record(tmp_path / "snapshots" / "step-000040") == record(tmp_path / "last")
        assert record(tmp_path / "last")["metrics"] == {"epoch": 4, "val_psnr": 20.5}
