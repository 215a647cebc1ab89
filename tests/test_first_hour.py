"""A new user's first hour (issue 23): budgets that hold, a quick-trial dataset, fast help, hints that
name `bair-world` commands, records of short runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bair_world.training import data as train_data
from bair_world.training import presets
from bair_world.training import train as train_module
from bair_world.training.reporting import epoch_position, plot_history
from bair_world.training.train import main


def tiny(data_root: Path, log_dir: Path, name: str = "run", **changes):
    cfg = presets.preset("tiny").replace(data_root=data_root, log_dir=log_dir, name=name, progress=False,
                                         batch_size=2, val_sequences=2, sample_every=0)
    return cfg.replace(**changes)


def test_the_budget_counts_data_preparation(data_root, tmp_path, monkeypatch):
    real = train_data.resolve_data_root

    def slow_generation(cfg):  # a first-time generation that eats the whole budget
        time.sleep(0.3)
        return real(cfg)

    monkeypatch.setattr(train_data, "resolve_data_root", slow_generation)
    summary = main(tiny(data_root, tmp_path, max_minutes=0.004))  # 0.24 s < the data preparation
    assert summary["stopped_by_budget"] and summary["step"] == 1  # at least one step, then stop
    assert "spent on setup" in (tmp_path / "run" / "train.log").read_text()


def test_quick_trains_on_the_small_cached_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("BAIR_WORLD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(train_data, "QUICK_COUNTS", {"train": 3, "validate": 2, "test": 0})
    cfg = presets.preset("tiny").replace(quick=True, progress=False)
    root = train_data.resolve_data_root(cfg)
    assert root.parent == tmp_path / "cache" and "train3-validate2-test0" in root.name
    from bair_world.data.packed import open_dataset

    assert len(open_dataset(root, "train")) == 3 and len(open_dataset(root, "validate")) == 2
    assert train_data.resolve_data_root(cfg) == root  # generated once, then reused


def test_quick_is_a_train_option_and_the_description_lists_every_preset(capsys):
    from bair_world.training.options import build_parser, parse_config

    assert parse_config(["--quick"]).quick and not parse_config([]).quick
    text = build_parser().format_help()
    for name in presets.PRESETS:
        assert name in text.split("\n\n")[1]  # the description paragraph


@pytest.mark.parametrize("command", ["train", "bundle", "demo", "rollout"])
def test_help_answers_without_importing_torch(command):
    code = ("import sys\nfrom bair_world import cli\ntry:\n    cli.main([%r, '--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch loaded' if 'torch' in sys.modules else 'no torch')" % command)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.strip().endswith("no torch"), out[-400:]
    assert "usage: bair-world " + command in out


def test_bundle_help_describes_every_option():
    from bair_world.training.bundle import build_parser

    text = " ".join(build_parser("bair-world bundle").format_help().split())
    for option, words in (("--dtype", "float16"), ("--max-mb", "MiB"), ("--tolerance-db", "dB"),
                          ("--check-seed", "sequence")):
        assert option in text and words in text
    assert "(default: 0.1)" in text  # defaults shown


def test_demo_precision_choices_are_the_world_models():
    from bair_world.envs.demo import PRECISION_CHOICES
    from bair_world.world_model import PRECISIONS

    assert PRECISION_CHOICES == tuple(PRECISIONS)


def test_a_missing_bundled_checkpoint_names_bair_world_commands(tmp_path, monkeypatch):
    from bair_world import checkpoint

    monkeypatch.setattr(checkpoint, "default_checkpoint", lambda: tmp_path / "none")
    with pytest.raises(FileNotFoundError) as err:
        checkpoint.resolve_checkpoint(None)
    assert "bair-world train" in str(err.value) and "bair-world bundle" in str(err.value)
    assert "python training/" not in str(err.value)


def test_rollout_defaults_to_the_bundled_checkpoint():
    import argparse

    from bair_world.checkpoint import default_checkpoint
    from bair_world.rollout_cli import configure_parser

    parser = argparse.ArgumentParser()
    configure_parser(parser)
    args = parser.parse_args(["--out", "x.gif"])
    assert args.checkpoint is None
    if not (default_checkpoint() / "config.json").is_file():
        pytest.skip("no bundled checkpoint")
    from bair_world.rollout_cli import _check_arguments

    _check_arguments(args)
    assert Path(args.checkpoint) == default_checkpoint()


def test_psnr_plot_has_whole_epoch_ticks_and_places_partial_rows(tmp_path, monkeypatch):
    from bair_world.training import reporting

    figures = {}
    real = reporting._save_figure

    def keep(fig, path):
        figures[Path(path).name] = [t for t in fig.axes[0].get_xticks()]
        real(fig, path)

    monkeypatch.setattr(reporting, "_save_figure", keep)
    row = {"loss": 0.1, "mse": 0.1, "kl": 1.0, "beta": 0.0, "tf_ratio": 1.0, "val_psnr": 20.0, "baseline_psnr": 19.0}
    history = [{**row, "epoch": 1, "step": 3, "partial": True, "batches": 3, "epoch_batches": 4},
               {**row, "epoch": 1, "step": 4}, {**row, "epoch": 2, "step": 8}]
    assert [epoch_position(r) for r in history] == [0.75, 1, 2]
    plot_history(history, tmp_path)
    assert (tmp_path / "psnr.png").is_file()
    for ticks in figures.values():
        assert all(float(t).is_integer() for t in ticks), ticks


def test_a_signal_stop_is_recorded_in_the_metrics_and_the_text_log(data_root, tmp_path, monkeypatch):
    import os
    import signal

    calls = []
    real = train_module.teacher_mask

    def mask_then_interrupt(*a):
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a)

    monkeypatch.setattr(train_module, "teacher_mask", mask_then_interrupt)
    summary = main(tiny(data_root, tmp_path))
    assert summary["stopped_by_signal"] == "SIGTERM"
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["partial"] and rows[0]["stopped"] == "SIGTERM"
    log = (tmp_path / "run" / "train.log").read_text()
    assert "SIGTERM after step 1" in log and "val PSNR" in log
