"""training/bundle.py: exporting a run into the package, fp16 weights loaded as fp32, the bundled default."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors import safe_open

import bair_world  # noqa: F401  (registers BairWorld-v0)
from helpers import make_tiny_checkpoint
from bair_world.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from bair_world.checkpoint import default_checkpoint, resolve_checkpoint
from bair_world.training import bundle as bundle_mod
from bair_world.training.bundle import BundleConfig, bundle, find_checkpoint, main


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A finished tiny run folder: best/, last/, train_config.json, metrics.jsonl, a plot."""
    run = tmp_path_factory.mktemp("runs") / "tiny-run"
    make_tiny_checkpoint(run / "best", seed=1)
    make_tiny_checkpoint(run / "last", seed=2)
    (run / "train_config.json").write_text(json.dumps({"epochs": 2, "batch_size": 4}))
    rows = [{"epoch": 1, "step": 2, "val_psnr": 20.0, "baseline_psnr": 21.0},
            {"epoch": 2, "step": 4, "val_psnr": 22.5, "baseline_psnr": 21.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "psnr.png").write_bytes(b"\x89PNG fake plot")
    return run


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_a_run_folder_exports_its_best_checkpoint_with_its_record(run, tmp_path):
    dest = tmp_path / "pkg" / "default"
    result = bundle(run, dest, BundleConfig(dtype="float32"))
    assert find_checkpoint(run) == (run / "best", run)
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "model.safetensors", "training_metrics.json",
                                                      "training_psnr.png"]
    assert not (dest / "resume.pt").exists() and result["dtype"] == "float32"
    exported, source = _state(load_model(dest)), _state(load_model(run / "best"))
    assert exported.keys() == source.keys() and all(torch.equal(exported[k], source[k]) for k in source)
    summary = json.loads((dest / "training_metrics.json").read_text())
    assert summary["run"] == "tiny-run" and summary["train_config"] == {"epochs": 2, "batch_size": 4}
    assert [e["epoch"] for e in summary["epochs"]] == [1, 2] and summary["best"]["val_psnr"] == 22.5
    config = json.loads((dest / "config.json").read_text())
    assert config["bundle"]["run"] == "tiny-run" and abs(config["bundle"]["check"]["psnr_change_db"]) < 1e-9
    assert not list(dest.parent.glob(".*")), "no staging or backup folder may be left behind"


def test_float16_weights_load_into_a_float32_model(run, tmp_path):
    dest = tmp_path / "default"
    result = bundle(run / "best", dest, BundleConfig(dtype="float16"))
    assert result["dtype"] == "float16" and abs(result["check"]["psnr_change_db"]) < 0.1
    with safe_open(str(dest / "model.safetensors"), "pt") as f:
        dtypes = {k: f.get_tensor(k).dtype for k in f.keys()}
    assert dtypes["decoder.upc5.weight"] == torch.float16 and dtypes["cond_mean"] == torch.float32
    model, info = load_checkpoint(dest)
    assert info["dtype"] == "float16"
    from bair_world.checkpoint import file_sha256  # the bundle records the exported file's hash (issue 21)

    assert info["weights_sha256"] == file_sha256(dest / "model.safetensors") != \
        load_checkpoint(run / "best")[1]["weights_sha256"]
    from bair_world.checkpoint import model_sha256  # and the "model" section with that hash (issue 32)

    assert info["model_sha256"] == model_sha256(info["model"], info["weights_sha256"])
    assert all(v.dtype == torch.float32 for v in model.state_dict().values() if v.is_floating_point())
    source = load_model(run / "best")
    for name, value in model.state_dict().items():  # fp16 rounding only: relative error <= 2**-11
        ref = source.state_dict()[name]
        if ref.is_floating_point():
            torch.testing.assert_close(value, ref, rtol=1e-3, atol=1e-4)
    # a checkpoint written half by save_checkpoint itself loads the same way
    save_checkpoint(tmp_path / "half", source, step=1, epoch=1, half=True)
    assert load_model(tmp_path / "half").decoder.upc5.weight.dtype == torch.float32


def test_auto_dtype_stores_float16_only_above_the_size_limit(run, tmp_path):
    assert bundle(run, tmp_path / "a", BundleConfig(dtype="auto", max_mb=1e-3))["dtype"] == "float16"
    assert bundle(run, tmp_path / "b", BundleConfig(dtype="auto", max_mb=100.0))["dtype"] == "float32"
    with pytest.raises(ValueError, match="dtype"):
        BundleConfig(dtype="bfloat16")


def test_refuses_what_is_not_a_checkpoint(run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="empty.*not a checkpoint"):
        bundle(empty, tmp_path / "out")
    broken = tmp_path / "broken"
    shutil.copytree(run / "best", broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        bundle(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    precious = tmp_path / "precious"  # a --dest typo must not swap a user's folder away
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="not a checkpoint; refusing"):
        bundle(run, precious)
    assert (precious / "notes.txt").read_text() == "keep me"
    with pytest.raises(CheckpointError, match="is the source"):
        bundle(run / "best", run / "best")


def test_replacing_a_bundle_is_atomic(run, tmp_path, monkeypatch):
    dest = tmp_path / "default"
    bundle(run / "last", dest, BundleConfig(dtype="float32"))
    before = (dest / "model.safetensors").read_bytes()

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash before the swap")

    monkeypatch.setattr(bundle_mod, "install_directory", crash)
    with pytest.raises(RuntimeError, match="simulated"):
        bundle(run / "best", dest, BundleConfig(dtype="float32"))
    assert (dest / "model.safetensors").read_bytes() == before  # the old bundle, whole
    assert not list(tmp_path.glob(".default*")), "the staging folder is cleaned up"
    monkeypatch.undo()
    bundle(run / "best", dest, BundleConfig(dtype="float32"))
    assert (dest / "model.safetensors").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["default"]


def test_an_export_that_changes_predictions_is_refused(run, tmp_path, monkeypatch):
    real = bundle_mod.check_rollout

    def drifting(*args, **kwargs):
        out = real(*args, **kwargs)
        return {**out, "psnr_change_db": 0.5}

    monkeypatch.setattr(bundle_mod, "check_rollout", drifting)
    with pytest.raises(CheckpointError, match="changes the check rollout"):
        bundle(run, tmp_path / "default", BundleConfig(dtype="float16"))
    assert not (tmp_path / "default").exists()


def test_cli_reports_errors_by_file(run, tmp_path, capsys):
    assert main([str(tmp_path / "nowhere"), "--dest", str(tmp_path / "d")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert main([str(run), "--dest", str(tmp_path / "d"), "--dtype", "float16"]) == 0
    out = capsys.readouterr().out
    assert "float16" in out and "best validation PSNR 22.50" in out
    assert out.strip().splitlines()[-1].endswith(f"try it: bair-world demo --checkpoint {tmp_path / 'd'}")  # names X


def test_missing_bundle_error_says_how_to_get_one(tmp_path, monkeypatch):
    import bair_world.checkpoint as checkpoint

    monkeypatch.setattr(checkpoint, "default_checkpoint", lambda: tmp_path / "checkpoints" / "default")
    with pytest.raises(FileNotFoundError, match="bundled checkpoint not found.*bair-world bundle"):
        resolve_checkpoint(None)


def test_the_bundled_checkpoint_makes_a_working_env():
    if not (default_checkpoint() / "config.json").is_file():
        pytest.skip("no bundled checkpoint yet (python training/bundle.py runs/<name>)")
    env = gym.make("BairWorld-v0", device="cpu")
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(np.concatenate([info["action"], info["position"]]))
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8 and np.isfinite(info["psnr"])
    env.close()
    size = sum(p.stat().st_size for p in default_checkpoint().iterdir() if p.is_file())
    assert size < 20 * 2**20


@pytest.mark.slow
def test_wheel_and_sdist_ship_the_bundle(run, tmp_path):
    """pyproject's package-data puts bair_world/checkpoints/default/* into both distributions."""
    import subprocess
    import sys
    import tarfile
    import zipfile

    repo = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "checkpoints", "*.egg-info")
    for folder in ("bair_world", "training", "envs"):
        shutil.copytree(repo / folder, src / folder, ignore=ignore)
    for file in ("pyproject.toml", "README.md"):
        shutil.copy(repo / file, src / file)
    bundle(run, src / "bair_world" / "checkpoints" / "default", BundleConfig(dtype="float16"))
    code = "import setuptools.build_meta as b; b.build_sdist('dist'); b.build_wheel('dist')"
    subprocess.run([sys.executable, "-c", code], cwd=src, check=True, capture_output=True)
    wanted = {f"bair_world/checkpoints/default/{n}" for n in ("config.json", "model.safetensors",
                                                                "training_metrics.json")}
    (wheel,), (sdist,) = (src / "dist").glob("*.whl"), (src / "dist").glob("*.tar.gz")
    assert wanted <= set(zipfile.ZipFile(wheel).namelist())
    names = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
    assert wanted <= names


def _absolute_paths(data) -> list[str]:
    """Every string in JSON ``data`` that is an absolute path."""
    if isinstance(data, dict):
        return [p for v in data.values() for p in _absolute_paths(v)]
    if isinstance(data, list):
        return [p for v in data for p in _absolute_paths(v)]
    return [data] if isinstance(data, str) and (data.startswith(("/", "~")) or data[1:3] == ":\\") else []


def test_a_bundle_holds_no_absolute_path_of_the_training_machine(tmp_path):
    run = tmp_path / "machine" / "runs" / "r"
    torch.manual_seed(0)
    from bair_world.models import SVG, model_preset

    save_checkpoint(run / "best", SVG(model_preset("tiny")), step=3, epoch=1,
                    data_info={"root": str(tmp_path / "cache" / "synth-v2-seed0"), "seed": 0})
    (run / "train_config.json").write_text(json.dumps({"data_root": str(tmp_path / "data"), "log_dir": "runs"}))
    dest = tmp_path / "default"
    bundle(run, dest, BundleConfig(dtype="float32"))
    config = json.loads((dest / "config.json").read_text())
    summary = json.loads((dest / "training_metrics.json").read_text())
    assert _absolute_paths(config) == [] and _absolute_paths(summary) == []
    assert config["data"]["root"] == "synth-v2-seed0" and config["bundle"]["source"] == "best"
    assert summary["train_config"] == {"data_root": "data", "log_dir": "runs"}  # relative paths kept


def test_the_shipped_bundle_holds_no_absolute_path():
    for name in ("config.json", "training_metrics.json"):
        assert _absolute_paths(json.loads((default_checkpoint() / name).read_text())) == [], name


def test_a_killed_bundles_staging_folder_is_removed_by_the_next(run, tmp_path, capsys):
    stale = tmp_path / f".default.tmp-{2**22 + 12345}-bundle-abc"  # pid above Linux's pid_max: dead
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"\0" * 1000)
    bundle(run, tmp_path / "default", BundleConfig(dtype="float32"))
    assert not stale.exists() and f"removed {stale}" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".default")) == []
