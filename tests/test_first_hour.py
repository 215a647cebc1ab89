"""A new user's first hour (issue 23): budgets that hold, a quick-trial dataset, fast help, hints that
name `bair-world` commands, records of short runs."""

from __future__ import annotations

import argparse

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bair_world.training import data as train_data
from bair_world.training import presets
from bair_world.training import epoch as epoch_module
from bair_world.training.reporting import epoch_position, plot_history
from bair_world.training.train import train


def tiny(data_root: Path, log_dir: Path, name: str = "run", **changes):
    cfg = presets.training_preset("tiny").replace(data_root=data_root, log_dir=log_dir, name=name, progress=False,
                                         batch_size=2, val_sequences=2, sample_every=0)
    return cfg.replace(**changes)


def test_the_budget_counts_data_preparation(data_root, tmp_path, monkeypatch):
    real = train_data.resolve_data_root

    def slow_generation(cfg):  # a first-time generation that eats the whole budget
        time.sleep(0.3)
        return real(cfg)

    monkeypatch.setattr(train_data, "resolve_data_root", slow_generation)
    summary = train(tiny(data_root, tmp_path, max_minutes=0.004))  # 0.24 s < the data preparation
    assert summary["stopped_by_budget"] and summary["step"] == 1  # at least one step, then stop
    assert "spent on setup" in (tmp_path / "run" / "train.log").read_text()


def test_quick_trains_on_the_small_cached_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("BAIR_WORLD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(train_data, "QUICK_COUNTS", {"train": 3, "validate": 2, "test": 0})
    cfg = presets.training_preset("tiny").replace(quick=True, progress=False)
    root = train_data.resolve_data_root(cfg)
    assert root.parent == tmp_path / "cache" and "train3-validate2-test0" in root.name
    from bair_world.data.open import open_dataset

    assert len(open_dataset(root, "train")) == 3 and len(open_dataset(root, "validate")) == 2
    assert train_data.resolve_data_root(cfg) == root  # generated once, then reused


def test_quick_is_a_train_option_and_the_description_lists_every_preset(capsys):
    from bair_world.training.options import configure_parser, parse_config

    assert parse_config(["--quick"]).quick and not parse_config([]).quick
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    text = parser.format_help()
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
    from bair_world.training.bundle import configure_parser

    parser = argparse.ArgumentParser(prog="bair-world bundle")
    configure_parser(parser)
    text = " ".join(parser.format_help().split())
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
    real = epoch_module.teacher_mask

    def mask_then_interrupt(*a):
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a)

    monkeypatch.setattr(epoch_module, "teacher_mask", mask_then_interrupt)
    summary = train(tiny(data_root, tmp_path))
    assert summary["stopped_by_signal"] == "SIGTERM"
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["partial"] and rows[0]["stopped"] == "SIGTERM"
    log = (tmp_path / "run" / "train.log").read_text()
    assert "SIGTERM after step 1" in log and "val PSNR" in log


# -- the envs ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from helpers import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


def integrated(ckpt, **kwargs):
    import gymnasium as gym

    import bair_world  # noqa: F401
    from helpers import FakeReferences
    from bair_world.envs import IntegratePosition

    return IntegratePosition(gym.make("BairWorld-v0", checkpoint=ckpt, references=FakeReferences(), device="cpu",
                                      **kwargs))


def test_integrate_position_sends_the_arms_own_positions(ckpt):
    import numpy as np

    from bair_world.sim import action_bounds, arm_step, quantise_action

    env = integrated(ckpt)
    assert env.action_space.shape == (4,) and np.array_equal(env.action_space.low, action_bounds()[0])
    obs, info = env.reset(seed=0, options={"index": 1})
    position = info["position"].astype(np.float64)
    np.testing.assert_allclose(info["arm_position"], position, rtol=1e-6)
    env.action_space.seed(0)
    for _ in range(3):
        action = env.action_space.sample()
        obs, reward, terminated, truncated, info = env.step(action)
        executed = quantise_action(action)
        np.testing.assert_allclose(info["cond"], np.concatenate([executed, position]), rtol=1e-6)
        assert float(info["cond"][2]).is_integer() and float(info["cond"][3]).is_integer()  # whole numbers
        position = arm_step(position, executed)
        np.testing.assert_allclose(info["arm_position"], position, rtol=1e-6)
        assert obs.shape == (64, 64, 3) and np.isfinite(info["psnr"])
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        env.step(np.zeros(7))
    env.close()


def test_integrate_position_passes_gymnasium_and_sb3_check_env(ckpt):
    import warnings

    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = integrated(ckpt)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)
    expected = ("symmetric and normalized", "different from the unwrapped version")
    assert [str(w.message) for w in caught if not any(e in str(w.message) for e in expected)] == []
    env.close()


def test_integrate_position_trains_under_sb3(ckpt):
    import gymnasium as gym
    import numpy as np
    from stable_baselines3 import PPO

    env = gym.wrappers.RescaleAction(integrated(ckpt), np.float32(-1.0), np.float32(1.0))
    PPO("CnnPolicy", env, n_steps=8, batch_size=8, n_epochs=1, device="cpu",
        policy_kwargs={"normalize_images": True}).learn(8)
    env.close()


def test_one_frame_rate_for_the_env_and_the_videos():
    import argparse

    from bair_world.envs.bair_world_env import BairWorldEnv
    from bair_world.rollout_cli import configure_parser
    from bair_world.sim.config import FRAME_RATE

    parser = argparse.ArgumentParser()
    configure_parser(parser)
    assert BairWorldEnv.metadata["render_fps"] == FRAME_RATE == parser.parse_args(["--out", "x.gif"]).fps


def test_human_rendering_goes_through_gymnasiums_window(ckpt):
    import gymnasium as gym

    import bair_world  # noqa: F401
    from helpers import FakeReferences

    env = gym.make("BairWorld-v0", checkpoint=ckpt, references=FakeReferences(), device="cpu", render_mode="human")
    assert env.unwrapped.render_mode == "rgb_array" and "HumanRendering" in repr(env)
    try:
        import pygame  # noqa: F401
    except ImportError:
        with pytest.raises(gym.error.DependencyNotInstalled, match="pygame"):
            env.reset(seed=0)
    env.close()


# -- evaluation table ---------------------------------------------------------------------------


def fake_report(sharpness: float) -> dict:
    curve = lambda v: {"mean": v, "per_step": [v, v + 1.0]}  # noqa: E731
    row = {"n_future": 2, "psnr": 25.0, "baseline_psnr": 22.0, "ssim": 0.9, "baseline_ssim": 0.8,
           "best_of_n_psnr": 25.5, "last_step_psnr": 24.0, "sharpness": sharpness, "moving_sharpness": 0.7,
           "arm_psnr": 16.0, "baseline_arm_psnr": 10.0, "arm_psnr_last_step": 15.0}
    return {"protocol": {"n_past": 2, "samples": 2, "seed": 0, "n_future": 2},
            "data": {"root": "d", "split": "test", "sequences": 3}, "checkpoint": {"path": "c"},
            "protocols": {"2": row},
            "model": {"psnr": curve(25.0), "arm_psnr": curve(16.0), "moving_sharpness": curve(0.7)},
            "baseline": {"psnr": curve(22.0), "arm_psnr": curve(10.0), "sharpness": curve(0.5),
                         "moving_sharpness": curve(0.6)}}


def test_the_evaluation_table_gives_copy_last_for_sharpness_and_last_steps():
    from bair_world.training.eval_report import format_table

    lines = {line[:22].strip(): line[22:].split() for line in format_table(fake_report(0.9)).splitlines()}
    assert lines["sharpness ratio"] == ["0.900", "1.000"]  # copy-last: the mean of its curve (0.5, 1.5)
    assert lines["sharpness arm+objects"] == ["0.700", "1.100"]
    assert lines["PSNR last step"] == ["24.00", "23.00"] and lines["arm PSNR last step"] == ["15.00", "11.00"]
    assert "note: sharpness" not in format_table(fake_report(0.9))


def test_a_sharpness_ratio_above_one_gets_a_word():
    from bair_world.training.eval_report import format_table

    text = format_table(fake_report(1.66))
    assert "sharpness ratio 1.66 > 1" in text and "noise" in text


def test_data_convert_help_says_where_the_real_tfrecords_come_from(capsys):
    from bair_world.cli import main as cli_main

    with pytest.raises(SystemExit):
        cli_main(["data", "convert", "--help"])
    text = capsys.readouterr().out
    assert "bair_robot_pushing_dataset_v0.tar" in text and "softmotion30_44k" in text


@pytest.mark.parametrize("name", ["cem_planner", "contact_sheet", "frame_strip", "goal_ppo", "perceptual_metrics",
                                  "replay_psnr", "sb3_ppo"])
def test_examples_show_their_defaults(name, capsys):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit):
        module.main(["--help"])
    assert "(default: " in " ".join(capsys.readouterr().out.split())


def test_integrate_position_vector_restarts_positions_on_autoreset(ckpt):
    import gymnasium as gym
    import numpy as np

    import bair_world  # noqa: F401
    from helpers import FakeReferences
    from bair_world.envs import IntegratePositionVector
    from bair_world.sim import arm_step, quantise_action

    vec = IntegratePositionVector(gym.make_vec("BairWorld-v0", num_envs=2, vectorization_mode="vector_entry_point",
                                               checkpoint=ckpt, references=FakeReferences(length=4), device="cpu"))
    assert vec.action_space.shape == (2, 4) and vec.single_action_space.shape == (4,)
    _, info = vec.reset(seed=0)
    position = info["position"].astype(np.float64)
    vec.action_space.seed(1)
    for step in range(3):  # 4 frames, 2 context: steps 1-2 play, step 2 truncates, step 3 autoresets
        actions = vec.action_space.sample()
        _, _, _, truncated, info = vec.step(actions)
        if step < 2:
            np.testing.assert_allclose(info["cond"][:, 4:], position, rtol=1e-6)
            position = arm_step(position, quantise_action(actions))
            np.testing.assert_allclose(info["arm_position"], position, rtol=1e-6)
    assert truncated.sum() == 0  # the autoreset step
    np.testing.assert_allclose(info["arm_position"], info["position"], rtol=1e-6)  # the new references' start
    vec.close()


def test_the_budget_stop_names_the_command_that_continues(data_root, tmp_path, capsys):
    from bair_world.training.train import main

    argv = ["--preset", "tiny", "--data-root", str(data_root), "--log-dir", str(tmp_path), "--name", "r",
            "--no-progress", "--max-minutes", "1e-7", "--sample-every", "0"]
    assert main(argv, prog="bair-world train") == 0
    assert f"continue with: bair-world train --resume {tmp_path / 'r'}" in capsys.readouterr().out
