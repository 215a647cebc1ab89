"""Config values from JSON files are type-checked: a wrong type is one error naming the file and field."""

from __future__ import annotations

import json

import pytest
from helpers import make_tiny_checkpoint
from helpers import write_folder_dataset

from bair_world.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from bair_world.models import SVG, ModelConfig
from bair_world.training import presets
from bair_world.training.config import TrainConfig
from bair_world.training.train import main


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("field, value, message", [
    ("residual", "no", "residual must be true or false, got 'no'"),
    ("g_dim", "32", "g_dim must be an integer, got '32'"),
    ("n_past", 2.0, "n_past must be an integer, got 2.0"),
    ("width", True, "width must be a number, got True"),
])
def test_a_checkpoint_model_field_of_the_wrong_type_is_refused(tmp_path, field, value, message):
    ckpt = make_tiny_checkpoint(tmp_path / "ckpt")
    config = json.loads((ckpt / "config.json").read_text())
    config["model"][field] = value
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(ckpt)
    assert str(info.value).startswith(f"{ckpt / 'config.json'}: bad model config") and message in str(info.value)


@pytest.mark.parametrize("key, value", [("step", "12"), ("epoch", 1.5), ("step", -1)])
def test_a_checkpoint_counter_of_the_wrong_type_is_refused(tmp_path, key, value):
    ckpt = make_tiny_checkpoint(tmp_path / "ckpt")
    edit_json(ckpt / "config.json", **{key: value})
    with pytest.raises(CheckpointError, match=f'config.json: "{key}" must be a non-negative integer, got {value!r}'):
        load_checkpoint(ckpt)


def test_config_dataclasses_check_types_of_python_values_too():
    with pytest.raises(ValueError, match="invalid ModelConfig: residual must be true or false, got 'no'"):
        ModelConfig(residual="no")
    with pytest.raises(ValueError, match=r"invalid TrainConfig: kl_anneal must be one of \['cyclical', 'monotonic', "
                                         r"'none'\], got 'linear'"):
        TrainConfig(kl_anneal="linear")
    assert TrainConfig(lr=1, grad_clip=None, data_root="data").lr == 1  # ints for floats, str for paths: fine


@pytest.fixture
def run_dir(tmp_path):
    """A run folder as train.py leaves it after one epoch (config and last checkpoint)."""
    root = write_folder_dataset(tmp_path / "bair", {"train": 2, "validate": 1})
    cfg = presets.training_preset("tiny").replace(data_root=root, log_dir=tmp_path, name="r", progress=False, batch_size=2,
                                         val_sequences=1, sample_every=0)
    run = tmp_path / "r"
    run.mkdir()
    cfg.save(run)
    return run, cfg


def test_a_run_config_of_the_wrong_type_is_one_line(run_dir, capsys):
    run, _ = run_dir
    edit_json(run / "train_config.json", epochs="3")
    assert main(["--resume", str(run)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(run / "train_config.json") in lines[0]
    assert "epochs must be an integer, got '3'" in lines[0]


def test_a_resume_state_of_the_wrong_type_is_one_line(run_dir, capsys):
    run, cfg = run_dir
    model = SVG(cfg.model)
    partial = {"epoch": 0, "batches": "1", "sums": [0.0, 0.0, 0.0], "rng": []}
    save_checkpoint(run / "last", model, step=1, epoch=0, resume_state={"partial": partial})
    before = (run / "last" / "resume.pt").read_bytes()
    assert main(["--resume", str(run)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"train.py: error: {run / 'last' / 'resume.pt'}: partial")
    assert (run / "last" / "resume.pt").read_bytes() == before
