"""Issue 32: a reader of a run's ``best/`` or ``last/`` while training saves it again sees one save:
the old checkpoint or the new one, never config.json of one with the weights of the other."""

from __future__ import annotations

import threading
import time

import pytest
import torch

import bair_world.checkpoint as checkpoint
from bair_world.checkpoint import CheckpointError, load_checkpoint, read_config, save_checkpoint
from bair_world.models import SVG, model_preset


def _model(seed: int) -> SVG:
    torch.manual_seed(seed)
    model = SVG(model_preset("tiny"))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    return model


def _fingerprint(model: SVG) -> float:
    return float(sum(p.detach().double().sum() for p in model.parameters()))


@pytest.fixture
def models():
    """Two models with different weights; the checkpoint's step says which one it holds."""
    return {1: _model(1), 2: _model(2)}


def test_a_save_while_the_files_are_read_leaves_the_reader_the_old_save(tmp_path, models, monkeypatch):
    path = tmp_path / "run" / "best"
    save_checkpoint(path, models[1], step=1, epoch=1)
    real, calls = checkpoint.read_header, []

    def save_meanwhile(file, *args):  # config.json of step 1 is read; on disk the weights are now step 2's
        if file.parent == path:  # not the save's own check of its staging folder
            calls.append(file)
            save_checkpoint(path, models[2], step=2, epoch=2)
        return real(file, *args)

    monkeypatch.setattr(checkpoint, "read_header", save_meanwhile)
    model, info = load_checkpoint(path)
    assert info["step"] == 1 and _fingerprint(model) == pytest.approx(_fingerprint(models[1]))
    assert len(calls) == 1 and read_config(path)["step"] == 2


def test_a_save_between_opening_the_config_and_the_weights_is_read_again(tmp_path, models, monkeypatch):
    path = tmp_path / "run" / "best"
    save_checkpoint(path, models[1], step=1, epoch=1)
    real, opened = checkpoint.open_regular, []

    def save_meanwhile(file, *args):
        if file.parent == path:
            opened.append(file.name)
            if opened == ["config.json", "model.safetensors"]:  # step 1's config is open: swap before the weights
                save_checkpoint(path, models[2], step=2, epoch=2)
        return real(file, *args)

    monkeypatch.setattr(checkpoint, "open_regular", save_meanwhile)
    model, info = load_checkpoint(path)
    assert info["step"] == 2 and _fingerprint(model) == pytest.approx(_fingerprint(models[2]))
    assert opened == ["config.json", "model.safetensors"] * 2  # opened again, both from the new save


def test_readers_see_whole_saves_while_a_writer_saves_continuously(tmp_path, models):
    path = tmp_path / "run" / "last"
    save_checkpoint(path, models[1], step=1, epoch=1)
    expected = {step: _fingerprint(m) for step, m in models.items()}
    stop, saves, errors = threading.Event(), [0], []

    def writer():
        while not stop.is_set():
            step = 1 + saves[0] % 2
            save_checkpoint(path, models[step], step=step, epoch=step)
            saves[0] += 1
            time.sleep(0.001)  # a thread saving without a pause would starve the reader of the GIL

    load_checkpoint(path)  # the first load pays torch's warm-up (about a second)
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    seen = {1: 0, 2: 0}
    try:
        for _ in range(20):
            try:
                model, info = load_checkpoint(path)
            except CheckpointError as e:  # none expected, not even "replaced during every attempt"
                errors.append(str(e))
                continue
            seen[info["step"]] += 1
            assert _fingerprint(model) == pytest.approx(expected[info["step"]]), info["step"]
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:3]
    assert saves[0] > 10 and min(seen.values()) > 2, (saves, seen)  # both saves were read, many swaps happened
    assert read_config(path)["step"] in (1, 2)
