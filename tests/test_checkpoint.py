"""Checkpoints: round trip, fp16, resume state, errors naming the file, interrupted saves."""

import json
import pickle

import pytest
from pathlib import Path
import torch

import bair_world
import bair_world.checkpoint as ckpt
import bair_world.io
from bair_world.checkpoint import CheckpointError, load_checkpoint, load_resume_state, save_checkpoint
from bair_world.models import SVG, model_preset


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = SVG(model_preset("tiny", prior="learned"))
    m.set_normalisation(torch.arange(7.0), torch.linspace(0.1, 1.0, 7))
    return m


def _equal_weights(a, b, atol=0.0):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k].float(), sb[k].float(), atol=atol, rtol=0, msg=k)


def test_round_trip(tmp_path, model):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = model.step(model.init_state(1), torch.rand(1, 3, 64, 64), torch.randn(1, 7), x_next=torch.rand(1, 3, 64, 64)).kl.sum()
    loss.backward()
    opt.step()
    resume = {"optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(), "kl": {"t": 7}}
    out = save_checkpoint(tmp_path / "best", model, step=12, epoch=3, metrics={"val_psnr": 24.5},
                          data_info={"root": "data/synth", "train": 10}, resume_state=resume)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "resume.pt"]
    loaded, info = load_checkpoint(out)
    _equal_weights(model, loaded)
    assert loaded.cfg == model.cfg and not loaded.training
    assert (info["step"], info["epoch"], info["metrics"], info["data"]) == (12, 3, {"val_psnr": 24.5}, {"root": "data/synth", "train": 10})
    assert info["normalisation"]["cond_mean"] == list(range(7))
    back = load_resume_state(out)
    assert torch.equal(back["torch_rng"], resume["torch_rng"]) and back["kl"] == {"t": 7}
    opt2 = torch.optim.Adam(loaded.parameters(), lr=1e-3)
    opt2.load_state_dict(back["optimizer"])
    assert opt2.state_dict()["state"][0]["step"] == 1
    assert isinstance(bair_world.load_model(out), SVG)


def test_load_model_none_is_the_bundled_default():
    from bair_world.checkpoint import default_checkpoint

    model = bair_world.load_model(None)  # as every env's checkpoint=None
    assert model.cfg == load_checkpoint(default_checkpoint())[0].cfg and not model.training
    assert bair_world.load_model().cfg == model.cfg


def test_fp16_option(tmp_path, model):
    out = save_checkpoint(tmp_path / "c", model, step=1, epoch=0, half=True)
    from safetensors.torch import load_file

    raw = load_file(str(out / "model.safetensors"))
    assert raw["encoder.c1.0.weight"].dtype == torch.float16 and raw["cond_std"].dtype == torch.float32
    loaded, info = load_checkpoint(out)
    assert info["dtype"] == "float16" and loaded.encoder.c1[0].weight.dtype == torch.float32
    _equal_weights(model, loaded, atol=2e-3)
    assert torch.equal(loaded.cond_std, model.cond_std)
    assert load_resume_state(out) is None


def test_overwrite_replaces_and_leaves_no_temporaries(tmp_path, model):
    save_checkpoint(tmp_path / "last", model, step=1, epoch=0)
    save_checkpoint(tmp_path / "last", model, step=2, epoch=1)
    assert load_checkpoint(tmp_path / "last")[1]["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["last"]


def test_missing_and_corrupt_files_name_the_file(tmp_path, model):
    out = save_checkpoint(tmp_path / "c", model, step=1, epoch=0, resume_state={"x": torch.ones(2)})
    with pytest.raises(CheckpointError, match="nope"):
        load_checkpoint(tmp_path / "nope")
    (out / "resume.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="resume.pt"):
        load_resume_state(out)
    (out / "model.safetensors").write_bytes(b"\x00\x01 not safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(out)
    (out / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors.*missing"):
        load_checkpoint(out)
    (out / "config.json").write_text("{ not json")
    with pytest.raises(CheckpointError, match="config.json.*JSON"):
        load_checkpoint(out)


def test_shape_mismatch_names_the_weights_file(tmp_path, model):
    out = save_checkpoint(tmp_path / "c", model, step=1, epoch=0)
    cfg = json.loads((out / "config.json").read_text())
    cfg["model"]["rnn_size"] = 32
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"model.safetensors.*shape"):
        load_checkpoint(out)
    cfg["model"]["backbone"] = "transformer"
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"config.json.*backbone"):
        load_checkpoint(out)


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_loading_never_unpickles_code(tmp_path, model):
    out = save_checkpoint(tmp_path / "c", model, step=1, epoch=0)
    (out / "resume.pt").write_bytes(pickle.dumps({"x": _Evil()}, protocol=2))
    with pytest.raises(CheckpointError, match="resume.pt"):
        load_resume_state(out)
    with pytest.raises(Exception):  # a resume state that could not be reloaded safely is refused at save
        save_checkpoint(tmp_path / "d", model, step=1, epoch=0, resume_state={"x": _Evil()})
    assert not (tmp_path / "d").exists()


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, model, monkeypatch):
    save_checkpoint(tmp_path / "last", model, step=1, epoch=0)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(ckpt, "atomic_write_bytes", boom)  # the config.json write
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "last", model, step=2, epoch=1)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "last")[1]["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last"]


def test_crash_between_renames_falls_back_to_previous(tmp_path, model, monkeypatch):
    save_checkpoint(tmp_path / "last", model, step=1, epoch=0)
    monkeypatch.setattr(bair_world.io, "_exchange", lambda a, b: False)  # no atomic exchange: two renames
    real_replace = ckpt.os.replace
    calls = []

    def replace_then_die(src, dst):
        real_replace(src, dst)
        if Path(dst).parent != tmp_path:  # a file written inside the staging folder
            return
        calls.append(dst)
        if len(calls) == 1:  # old moved to the backup; killed before the new one is renamed in
            raise SystemExit("kill -9")

    monkeypatch.setattr(ckpt.os, "replace", replace_then_die)
    with pytest.raises(SystemExit):
        save_checkpoint(tmp_path / "last", model, step=2, epoch=1)
    monkeypatch.undo()
    with pytest.warns(UserWarning, match="previous"):
        assert load_checkpoint(tmp_path / "last")[1]["step"] == 1
    save_checkpoint(tmp_path / "last", model, step=3, epoch=2)  # the next save recovers cleanly
    assert load_checkpoint(tmp_path / "last")[1]["step"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["last"]


# --- issue 32: no silent wrong models ------------------------------------------------------------

def _edit_config(path: Path, edit) -> None:
    config = json.loads((path / "config.json").read_text())
    edit(config)
    (path / "config.json").write_text(json.dumps(config))


@pytest.fixture
def tiny(tmp_path):
    from helpers import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path / "ckpt")


def _set_cond_std_rehashed(path: Path, value: float, *, in_config: bool) -> None:
    """cond_std[0] = value in the weights (and config.json), every hash recomputed: a plausible-looking
    checkpoint that only the statistics' bounds can refuse."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path / "model.safetensors"))
    tensors["cond_std"][0] = value
    save_file(tensors, str(path / "model.safetensors"))

    def edit(config):
        if in_config:
            config["normalisation"]["cond_std"][0] = value
        config["weights_sha256"] = ckpt.file_sha256(path / "model.safetensors")
        config["model_sha256"] = ckpt.model_sha256(config["model"], config["weights_sha256"])

    _edit_config(path, edit)


def test_implausible_normalisation_rehashed_is_refused_naming_the_file(tiny):
    _set_cond_std_rehashed(tiny, 1e-38, in_config=True)
    with pytest.raises(CheckpointError, match=r'config.json: "normalisation": cond_std holds 1e-38, outside the '
                                              r"plausible \[1e-06, 10000\]"):
        load_checkpoint(tiny)
    _edit_config(tiny, lambda c: c["normalisation"]["cond_std"].__setitem__(0, 0.03))  # the weights alone wrong
    with pytest.raises(CheckpointError, match=r"model.safetensors: tensor cond_std holds 1e-38"):
        load_checkpoint(tiny, verify=False)  # not even for hand-edited weights
    _edit_config(tiny, lambda c: c["normalisation"]["cond_mean"].__setitem__(4, 6e5))
    with pytest.raises(CheckpointError, match=r'config.json: "normalisation": cond_mean holds 600000'):
        ckpt.read_config(tiny)
    _edit_config(tiny, lambda c: c["normalisation"]["cond_mean"].__setitem__(4, 10**400))  # too big for a float
    with pytest.raises(CheckpointError, match=r'config.json: "normalisation": cond_mean must be a list of finite'):
        ckpt.read_config(tiny)
    _edit_config(tiny, lambda c: c["normalisation"].update(cond_mean=[0.0] * 7, cond_min=[0.0] * 3))
    with pytest.raises(CheckpointError, match=r'config.json: "normalisation": cond_min must hold 7 values .* got 3'):
        ckpt.read_config(tiny)  # was an env ValueError naming no file


def test_set_normalisation_refuses_what_loading_would():
    model = SVG(model_preset("tiny"))
    with pytest.raises(ValueError, match="implausible normalisation"):
        model.set_normalisation(torch.zeros(7), torch.full((7,), 1e5))
    with pytest.raises(ValueError, match="implausible normalisation"):
        model.set_normalisation(torch.full((7,), -2e4), torch.ones(7))
    model.set_normalisation(torch.zeros(7), torch.full((7,), 1e-38))  # a constant column: stored as std 1
    assert torch.equal(model.cond_std, torch.ones(7))
    model.set_normalisation(torch.zeros(7), torch.full((7,), 1e-6))  # the smallest std kept is loadable
    ckpt.check_cond_stats(Path("config.json"), "cond_std", model.cond_std)


@pytest.mark.parametrize("field,value", [("residual", True), ("skip", "previous"), ("n_past", 3),
                                         ("max_flow", 8.0)])
def test_an_architecture_flag_edited_in_config_json_is_refused(tiny, field, value):
    assert ckpt.model_sha256(ckpt.read_config(tiny)["model"], "x") != \
        ckpt.model_sha256({**ckpt.read_config(tiny)["model"], field: value}, "x")
    _edit_config(tiny, lambda c: c["model"].__setitem__(field, value))  # every tensor keeps its shape
    with pytest.raises(CheckpointError, match=r'config.json: the "model" section differs from the one the weights '
                                              r"were saved with .* verify=False"):
        load_checkpoint(tiny)
    assert getattr(load_checkpoint(tiny, verify=False)[0].cfg, field) == value  # an edit made on purpose


def test_the_model_hash_fills_in_defaults_and_ignores_number_spelling(tiny):
    config = ckpt.read_config(tiny)
    short = {k: v for k, v in config["model"].items() if k not in ("flow_head", "max_flow")}  # an older config
    assert ckpt.model_sha256(short, "w") == ckpt.model_sha256(config["model"], "w")
    assert ckpt.model_sha256({**short, "max_flow": 4}, "w") == ckpt.model_sha256(config["model"], "w")
    assert ckpt.model_sha256(config["model"], "w") != ckpt.model_sha256(config["model"], "v")  # tied to the weights
    _edit_config(tiny, lambda c: c.__setitem__("model", short))
    load_checkpoint(tiny)


def test_an_old_format_checkpoint_loads_with_one_warning(tiny, recwarn):
    _edit_config(tiny, lambda c: [c.pop("weights_sha256"), c.pop("model_sha256")])
    load_checkpoint(tiny)
    notices = [str(w.message) for w in recwarn if "not verified" in str(w.message)]
    assert len(notices) == 1 and "config.json: no weights_sha256 recorded" in notices[0]
    assert "weights and architecture were not verified" in notices[0]
    recwarn.clear()
    _edit_config(tiny, lambda c: c.__setitem__("weights_sha256", ckpt.file_sha256(tiny / "model.safetensors")))
    with pytest.warns(UserWarning, match=r"no model_sha256 recorded .* architecture .* not verified"):
        load_checkpoint(tiny)  # saved between the two hashes: the weights are checked, the flags not


def test_the_bundled_checkpoint_verifies_its_model_hash(tmp_path):
    import shutil
    import warnings

    info = ckpt.read_config(ckpt.default_checkpoint())
    assert info["model_sha256"] == ckpt.model_sha256(info["model"], info["weights_sha256"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # verified: no "not verified" warning
        load_checkpoint(ckpt.default_checkpoint())
    copy = shutil.copytree(ckpt.default_checkpoint(), tmp_path / "default")
    _edit_config(copy, lambda c: c["model"].__setitem__("residual", not c["model"]["residual"]))
    with pytest.raises(CheckpointError, match='config.json: the "model" section differs'):
        load_checkpoint(copy)
