"""Issue 30: recorded object poses (folder and packed), the state readout (trains, round-trips, refuses
data without poses), and the model's latent step it reads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import make_tiny_checkpoint, write_folder_dataset
from bair_world.checkpoint import load_model, read_config
from bair_world.data.errors import DataError
from bair_world.data.packed import pack_dataset
from bair_world.data.poses import POSES_FILE, pose_slots, read_poses
from bair_world.data.synthetic import sequence_dir, write_dataset, write_packed
from bair_world.data.validate import check_dataset
from bair_world.data.batch import frames_to_float
from bair_world.readout import FORMAT_VERSION, FRAME, GRID, ReadoutError, load_readout, save_readout, soft_argmax
from bair_world.readout_train import (fit_readout, frames_of, push_rollouts, readout_data, score_frames,
                                      score_imagined)
from bair_world.sim import PushWorld, rollout, sequence_worlds
from bair_world.world_model import WorldModel

COUNTS = {"train": 3, "validate": 2}
LENGTH = 8


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root / "folder", COUNTS, workers=1, progress=False, length=LENGTH)
    write_packed(root / "packed", COUNTS, workers=1, progress=False, length=LENGTH)
    return root


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


def test_poses_are_the_worlds_by_palette_colour(synth):
    world = PushWorld(7)
    slots = world.pose_slots()
    for spec, pose in zip(world.specs, world.object_poses):
        np.testing.assert_allclose(slots[spec.palette], pose, rtol=1e-6)
    assert np.isnan(slots).all(-1).sum() == 9 - len(world.specs)
    with pytest.raises(ValueError, match="distinct"):
        pose_slots([1, 1], np.zeros((2, 3)))
    # the writer records them; folder and packed hold the same values; data check passes
    seq = sequence_dir(synth / "folder", "train", 0)
    folder, packed = readout_data(synth / "folder", "train"), readout_data(synth / "packed", "train")
    np.testing.assert_array_equal(folder.poses, packed.poses)
    np.testing.assert_array_equal(folder.frames, packed.frames)
    assert folder.poses.shape == (3, LENGTH, 9, 3) and np.array_equal(read_poses(seq), folder.poses[0], equal_nan=True)
    assert check_dataset(synth / "folder").ok and check_dataset(synth / "packed").ok
    # and they are the true world's poses of that sequence, frame by frame
    from bair_world.data.seeds import recorded_seeds

    seed = recorded_seeds(synth / "folder", "train")[0]
    for t, w, _ in sequence_worlds(seed, LENGTH):
        np.testing.assert_array_equal(w.pose_slots(), folder.poses[0, t])


def test_data_without_poses_is_refused_naming_the_file(tmp_path, ckpt, capsys):
    old = write_folder_dataset(tmp_path / "old", {"train": 2, "validate": 1})
    with pytest.raises(DataError, match=r"traj_0_to_255/0/poses\.npz.*no object poses"):
        readout_data(old, "train")
    pack_dataset(old, tmp_path / "old-packed", progress=False)
    with pytest.raises(DataError, match=r"train/poses\.npy.*no object poses"):
        readout_data(tmp_path / "old-packed", "train")
    from bair_world.training.readout import main

    assert main(["--checkpoint", str(ckpt), "--data-root", str(old), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "poses.npz" in err and "bair-world data synth" in err
    assert not (ckpt / "readout.safetensors").exists()


def test_a_corrupt_poses_file_is_named_by_data_check(synth, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(synth / "folder", root)
    bad = sequence_dir(root, "validate", 1) / POSES_FILE
    bad.write_bytes(b"not a zip")
    report = check_dataset(root)
    assert not report.ok and any(e.path == bad for e in report.errors)


def test_step_latent_is_the_step_and_can_skip_decoding(ckpt):
    model = load_model(ckpt)
    r = rollout(3, 5)
    frames = torch.from_numpy(r.frames).permute(0, 3, 1, 2).float()[None] / 255  # (1, 5, 3, 64, 64)
    conds = torch.from_numpy(np.concatenate([r.actions, r.positions], 1).astype(np.float32))[None]
    a, b = WorldModel(model), WorldModel(model)
    for wm in (a, b):
        wm.reset(frames[:, :2], conds[:, :1], torch.Generator().manual_seed(0))
    for t in range(1, 4):
        plain = a.step(conds[:, t], torch.Generator().manual_seed(t))
        h, frame = b.step_latent(conds[:, t], torch.Generator().manual_seed(t))
        torch.testing.assert_close(frame, plain)
        assert h.shape == (1, model.cfg.g_dim)
    h, frame = b.step_latent(conds[:, 4], decode=False)
    assert frame is None
    with pytest.raises(RuntimeError, match="without decoding"):
        b.step_latent(conds[:, 4])


def test_readout_trains_and_round_trips(synth, ckpt, tmp_path):
    torch.manual_seed(0)
    wm = WorldModel(load_model(ckpt))
    examples = frames_of(wm, readout_data(synth / "packed", "train"))
    n_past = wm.model.cfg.n_past
    assert examples.encoded[0].shape == (3 * LENGTH, 64, 64, 3)
    assert examples.predicted[0].shape == (3 * (LENGTH - n_past), 64, 64, 3)
    readout, fit = fit_readout(examples, wm, hidden=8, steps=150, batch_size=8, lr=3e-3)
    assert fit.last_loss < 0.6 * fit.first_loss
    sha = read_config(ckpt).get("model_sha256")
    (tmp_path / "ro").mkdir()
    path = save_readout(tmp_path / "ro", readout, {"model_sha256": sha})
    assert path.name == "readout.safetensors" and [p.name for p in path.parent.iterdir()] == [path.name]
    loaded, header = load_readout(tmp_path / "ro", sha)
    skips = wm.encode_skips(frames_to_float(examples.encoded[0][:5]))
    for kind in ("encoded", "predicted"):
        a, b = readout(skips, kind), loaded(skips, kind)
        torch.testing.assert_close(a.objects, b.objects)
        torch.testing.assert_close(a.arm, b.arm)
    assert header["model_sha256"] == sha and header["format_version"] == FORMAT_VERSION
    with pytest.raises(ReadoutError, match="another|not on this checkpoint"):
        load_readout(path, "0" * 64)
    with pytest.raises(ReadoutError, match="missing"):
        load_readout(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="encoder's skips"):
        readout([torch.zeros(2, 64)])
    scores = score_frames(readout, wm, readout_data(synth / "folder", "validate"))
    assert scores["frames"] == 2 * LENGTH and np.isfinite(scores["objects_m"])
    imagined = score_imagined(readout, wm, push_rollouts([11, 12], LENGTH))
    assert len(imagined["per_step_objects_m"]) == LENGTH - n_past and np.isfinite(imagined["objects_m"])


def test_an_old_format_readout_is_refused_naming_the_version(tmp_path):
    from safetensors.torch import save

    old = tmp_path / "readout.safetensors"
    header = {"format": "bair-world-readout", "format_version": 1, "config": {"g_dim": 64, "hidden": 256}}
    old.write_bytes(save({"x": torch.zeros(1)}, metadata={"readout": json.dumps(header)}))
    with pytest.raises(ReadoutError, match=r"readout\.safetensors.*v1 file.*reads v2 only.*retrain"):
        load_readout(tmp_path)


def test_soft_argmax_is_exact_on_a_hand_made_map():
    g = GRID
    logits = torch.full((1, 3, g, g), -1e4)
    logits[0, 0, 3, 5] = 0.0  # one cell: its centre
    logits[0, 1, 7, 2] = logits[0, 1, 7, 3] = 0.0  # two cells, equal: halfway
    logits[0, 2] = 0.0  # uniform: the frame's centre
    cell = FRAME / g
    expected = torch.tensor([[[5.5 * cell, 3.5 * cell], [3.0 * cell, 7.5 * cell], [FRAME / 2, FRAME / 2]]])
    torch.testing.assert_close(soft_argmax(logits), expected)
    offsets = torch.zeros(1, 3, 2, g, g)
    offsets[0, 0, 0] = 0.25  # a quarter cell right
    offsets[0, 0, 1] = -0.5  # half a cell up
    torch.testing.assert_close(soft_argmax(logits, offsets)[0, 0], torch.tensor([5.75 * cell, 3.0 * cell]))
    # the nominal camera maps a table point's pixels back to it
    from bair_world.readout import apply_homography, nominal_homography, nominal_projection

    world = torch.tensor([[0.55, -0.1, 0.19, 1.0], [0.7, 0.15, 0.19, 1.0]])
    hom = world @ nominal_projection().T
    back = apply_homography(nominal_homography()[None], (hom[:, :2] / hom[:, 2:])[None])[0]
    torch.testing.assert_close(back, world[:, :2], atol=1e-5, rtol=0)


def test_readout_command_trains_saves_beside_the_checkpoint_and_rescores(synth, tmp_path, capsys):
    from bair_world.cli import main as cli_main

    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    argv = ["readout", "--checkpoint", str(ckpt), "--data-root", str(synth / "packed"), "--steps", "20",
            "--held-out", "2", "--hidden", "16", "--sequences", "2"]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert (ckpt / "readout.safetensors").is_file() and "held-out real frames" in out
    assert cli_main(argv + ["--evaluate-only"]) == 0
    assert "imagined" in capsys.readouterr().out
