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
