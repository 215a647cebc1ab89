"""The motion path (issue 28): the simulator's true flow, the coarse-to-fine flow head, the motion losses
and the training options that use them."""

from __future__ import annotations

import json
from unittest.mock import patch

import numpy as np
import pytest
import torch

from bair_world.checkpoint import load_checkpoint, save_checkpoint
from bair_world.data import DataError
from bair_world.data.synthetic import write_dataset
from bair_world.models import SVG
from bair_world.models.config import model_preset
from bair_world.models.motion import DecodeParts, warp
from bair_world.sim import PushWorld
from bair_world.sim.flow import ARM_ID, PoseState, instance_map, true_flow
from bair_world.training.model_init import init_from
from bair_world.training.motion_loss import (CONTEXT, IGNORE, WARP, MotionTargets, flow_loss, mask_loss,
                                             motion_targets, pyramid_warp_loss)
from bair_world.training.train import train

from test_train import tiny


def _to_float(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0  # (64, 64, 3) -> (1, 3, 64, 64)


def _world_away_from_objects(seed: int = 3) -> PushWorld:
    world = PushWorld(seed)
    world._position = np.array([0.45, 0.15, 0.29])  # the arm high and to the side
    return world


def _frame_px(r, points: np.ndarray) -> np.ndarray:
    """(K, 3) world points -> (K, 2) coordinates in the 64x64 frame (pixel j's centre at j)."""
    s = r.cfg.render_scale
    return (r.cam.project(points) - (s - 1) / 2) / s


@pytest.mark.parametrize("move", [(0.02, 0.0, 0.0), (0.0, -0.015, 0.0), (0.0, 0.0, 0.5), (0.01, 0.01, -0.3)])
def test_true_flow_carries_a_moved_object(move):
    world = _world_away_from_objects()
    r = world.renderer
    before = PoseState(world.object_poses, world.position, 0.0)
    poses = before.poses.copy()
    poses[0] += move  # translate object 0 by dx, dy (metres) and/or rotate it by an angle (radians)
    after = PoseState(poses, before.position, 0.0)
    flow = true_flow(r, before, after)
    ids = instance_map(r, after)
    obj = ids == 1
    assert obj.sum() > 10
    assert np.abs(flow[~obj & (ids != ARM_ID)]).max() < 1e-6  # nothing else moved
    # points of the object's mid-height section: the flow at the pixel where each is now points to
    # where it was
    z = r.cfg.table_z + r.specs[0].height / 2
    rot = lambda a: np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])  # noqa: E731
    checked = 0
    for u in r.specs[0].outline * 0.5:
        now = _frame_px(r, np.array([[*(rot(poses[0, 2]) @ u + poses[0, :2]), z]]))[0]
        was = _frame_px(r, np.array([[*(rot(before.poses[0, 2]) @ u + before.poses[0, :2]), z]]))[0]
        col, row = np.round(now).astype(int)
        if not obj[row, col]:
            continue
        # the pixel centre is up to 0.71 px from the point; a rotation turns that offset by its angle
        np.testing.assert_allclose(flow[row, col], was - now, atol=0.1 + 0.71 * abs(move[2]) * 1.2)
        checked += 1
    assert checked >= 3
    if move[2] == 0.0:  # a translation: the previous frame warped by the flow redraws the object where it went
        frame_before, frame_after = r.draw(before.poses, before.position, 0.0), r.draw(poses, before.position, 0.0)
        warped = warp(_to_float(frame_before), torch.from_numpy(flow).permute(2, 0, 1)[None])
        err = (warped - _to_float(frame_after)).abs().amax(1)[0].numpy()
        copy = np.abs(frame_before.astype(float) - frame_after.astype(float)).max(-1) / 255.0
        inner = obj & (copy > 0.05)
        assert inner.sum() > 3 and err[inner].mean() < 0.35 * copy[inner].mean()


def test_true_flow_moves_the_arm_with_the_end_effector():
    world = _world_away_from_objects()
    r = world.renderer
    before = PoseState(world.object_poses, world.position, 0.0)
    after = PoseState(before.poses, before.position + np.array([0.03, -0.02, 0.0]), 0.0)
    flow = true_flow(r, before, after)
    arm = instance_map(r, after) == ARM_ID
    z = after.position[2] + 0.02  # the fingers
    tips = r.cam.project(np.array([before.position[:2].tolist() + [z], after.position[:2].tolist() + [z]]))
    expected = (tips[0] - tips[1]) / r.cfg.render_scale
    rows, cols = np.nonzero(arm)
    low = arm & (np.arange(64)[:, None] >= rows.max() - 3)  # the gripper's lowest rows: the fingers
    np.testing.assert_allclose(flow[low].mean(0), expected, atol=0.5)
    assert np.linalg.norm(expected) > 2.0


def test_rollout_flow_explains_the_recorded_frames():
    from bair_world.sim import rollout

    r = rollout(5, 12, labels=True, flow=True)
    assert np.all(r.flow[0] == 0) and r.flow.shape == (12, 64, 64, 2)
    frames = torch.from_numpy(r.frames).permute(0, 3, 1, 2).float() / 255  # (T, 64, 64, 3) -> (T, 3, 64, 64)
    warped = warp(frames[:-1], torch.from_numpy(r.flow[1:]).permute(0, 3, 1, 2))
    arm = torch.from_numpy(r.labels[1:] == 1)
    err_warp = (warped - frames[1:]).abs().amax(1)[arm].mean()
    err_copy = (frames[:-1] - frames[1:]).abs().amax(1)[arm].mean()
    assert err_warp < 0.5 * err_copy


def _targets(flow: torch.Tensor, labels: torch.Tensor) -> MotionTargets:
    return motion_targets(labels, flow, n_past=1, context_mask=True)


def test_motion_targets_and_losses_are_zero_on_perfect_predictions_and_positive_otherwise():
    b, t = 2, 3
    labels = torch.zeros(b, t, 64, 64, dtype=torch.uint8)
    labels[:, :, 10:20, 10:20] = 2  # an object
    labels[:, :, 40:50, 30:34] = 1  # the arm
    flow = torch.zeros(b, t, 2, 64, 64)
    flow[:, :, 0, 10:20, 10:20] = -2.0  # the object moved 2 px right: it was 2 px to the left
    targets = _targets(flow, labels)
    assert targets.moving.shape == ((t - 1) * b, 64, 64)
    assert (targets.mask[:, 15, 15] == WARP).all() and (targets.mask[:, 45, 31] == WARP).all()
    assert (targets.mask[:, 0, 0] == CONTEXT).all()
    assert flow_loss(targets.flow.clone(), targets) < 2e-3
    assert abs(flow_loss(torch.zeros_like(targets.flow), targets) - 2.0 * 100 / 140) < 0.01  # 100 object px at 2 px, 40 arm px still
    logits = torch.full((targets.mask.shape[0], 3, 64, 64), -30.0)
    logits.scatter_(1, targets.mask.clamp_min(0)[:, None], 30.0)
    perfect = DecodeParts(None, None, torch.softmax(logits, 1), logits)
    assert mask_loss(perfect, targets) < 1e-6
    wrong = DecodeParts(None, None, torch.softmax(-logits, 1), -logits)
    assert mask_loss(wrong, targets) > 10


def test_uncovered_pixels_get_no_mask_target():
    labels = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
    labels[:, 1, 5:9, 5:9] = 1  # the arm was here at t=1 and left at t=2
    targets = _targets(torch.zeros(1, 3, 2, 64, 64), labels)
    assert (targets.mask[1, 5:9, 5:9] == IGNORE).all()


def test_pyramid_warp_loss_teaches_a_multi_pixel_move_that_a_full_resolution_warp_cannot():
    x = torch.zeros(1, 3, 64, 64)
    x[:, :, 20:36, 20:36] = 1.0
    moved = torch.roll(x, shifts=6, dims=-1)  # a 6 px move, beyond a bilinear warp's 1 px gradient
    true = torch.zeros(1, 2, 64, 64)
    true[:, 0] = -6.0
    assert pyramid_warp_loss(x, moved, true) < 0.2 * pyramid_warp_loss(x, moved, torch.zeros_like(true))

    def fit(scales) -> float:  # a uniform flow fitted by gradient descent from zero
        shift = torch.zeros(2, requires_grad=True)
        opt = torch.optim.Adam([shift], lr=0.2)
        for _ in range(60):
            opt.zero_grad()
            with patch("bair_world.training.motion_loss.PYRAMID_SCALES", scales):
                pyramid_warp_loss(x, moved, shift.reshape(1, 2, 1, 1).expand(1, 2, 64, 64)).backward()
            opt.step()
        return float(shift[0].detach())

    assert fit((1,)) > -1.0  # stuck: no gradient at full resolution
    assert abs(fit((1, 2, 4, 8)) + 6.0) < 1.0


def test_pyramid_head_starts_with_no_flow_and_open_masks_and_decode_matches_decode_parts():
    torch.manual_seed(0)
    model = SVG(model_preset("tiny", motion=True, context_mask=True, flow_head="pyramid", max_flow=8.0)).eval()
    state = model.init_state(2)
    x, cond = torch.rand(2, 3, 64, 64), torch.randn(2, 7)
    adv = model.advance(state, *model.encoder(x), cond, x_prev=x)
    parts = model.decode_parts(adv.h_pred, adv.state.skips, x, cond, adv.state.context)
    assert parts.flow.abs().max() == 0
    torch.testing.assert_close(parts.weights, torch.full_like(parts.weights, 1 / 3))
    torch.testing.assert_close(model.decode(adv.h_pred, adv.state.skips, x, cond, adv.state.context), parts.frame)
    plain = SVG(model_preset("tiny")).eval()
    adv = plain.advance(plain.init_state(2), *plain.encoder(x), cond, x_prev=x)
    parts = plain.decode_parts(adv.h_pred, adv.state.skips, x, cond)
    assert parts.flow is None and torch.equal(parts.weights[:, 1], torch.ones(2, 64, 64))
    with pytest.raises(ValueError, match="needs motion"):
        model_preset("tiny", flow_head="pyramid")


def test_a_single_head_checkpoint_grows_into_a_pyramid_head_with_a_fresh_open_motion_head(tmp_path):
    torch.manual_seed(0)
    base = SVG(model_preset("tiny", motion=True, context_mask=True))
    save_checkpoint(tmp_path / "base", base, step=1, epoch=1)
    grown = SVG(base.cfg.replace(flow_head="pyramid", max_flow=8.0))
    init_from(grown, tmp_path / "base")
    assert torch.equal(grown.decoder.upc5.weight, base.decoder.upc5.weight)
    assert torch.equal(grown.motion_head_output().bias, torch.zeros(4))  # open, not release 3's -6


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, {"train": 4, "validate": 3, "test": 0}, progress=False, workers=1)
    return root


@pytest.mark.parametrize("losses", [dict(flow_weight=0.01, mask_weight=0.01), dict(warp_weight=0.1)])
def test_each_motion_loss_trains_a_step_and_the_checkpoint_records_it(losses, sim_root, tmp_path):
    cfg = tiny(sim_root, tmp_path)
    cfg = cfg.replace(model=cfg.model.replace(motion=True, context_mask=True, flow_head="pyramid", max_flow=8.0),
                      epochs=1, epoch_size=1, snapshot_every=1, **losses)
    summary = train(cfg)
    assert np.isfinite(summary["val_psnr"])
    model, info = load_checkpoint(tmp_path / "run" / "last")
    assert model.cfg.flow_head == "pyramid"
    recorded = json.loads((tmp_path / "run" / "last" / "config.json").read_text())["data"]["losses"]
    assert {k: recorded[k] for k in losses} == losses
    snapshot, _ = load_checkpoint(tmp_path / "run" / "snapshots" / "step-000001")
    for a, b in zip(model.state_dict().values(), snapshot.state_dict().values()):
        assert torch.equal(a, b)


def test_simulator_losses_refuse_data_without_flow(data_root, tmp_path):
    cfg = tiny(data_root, tmp_path)
    cfg = cfg.replace(model=cfg.model.replace(motion=True), epochs=1, epoch_size=1, flow_weight=0.01)
    with pytest.raises(DataError, match="built-in pushing world"):
        train(cfg)


def test_motion_losses_need_the_motion_output(tmp_path):
    with pytest.raises(ValueError, match="need the motion output"):
        tiny(tmp_path, tmp_path, warp_weight=0.1)


def test_moving_windows_oversample_the_windows_where_objects_move():
    import random

    from bair_world.data.batch import Batch
    from bair_world.training.data import random_crop, window_weights

    b, t, length = 2, 30, 8
    labels = torch.zeros(b, t, 64, 64, dtype=torch.uint8)
    labels[:, :, 10:20, 10:20] = 2
    flow = torch.zeros(b, t, 2, 64, 64)
    flow[:, 22:25, 0] = 2.0  # objects move in frames 22-24 only
    weights = window_weights(labels, flow, length, strength=4.0)
    assert weights.shape == (b, t - length + 1)
    assert weights[0, 20] > 1.5 and weights[0, 0] == 1.0  # offset 20 predicts frames 21..27
    batch = Batch(torch.rand(b, t, 3, 64, 64), torch.zeros(b, t, 4), torch.zeros(b, t, 3), labels, flow)
    rng = random.Random(0)
    hits = 0
    for _ in range(40):
        window = random_crop(batch, length, rng, moving_windows=50.0)
        assert window[3].shape == (b, length, 2, 64, 64)
        hits += int((window[3].abs().sum((2, 3, 4)) > 0).any(1).sum())
    assert hits > 0.8 * 40 * b  # nearly every drawn window holds the motion (uniform: ~30 %)


@pytest.mark.parametrize("form", ["folders", "packed"])
def test_training_windows_are_cropped_stored_and_converted_on_the_device_to_the_same_numbers(form, sim_root,
                                                                                              tmp_path):
    """Issue 31: training opens its split ``stored=True`` (uint8 frames, int8 flow) and converts only the
    cropped window; the window equals the crop of the float items, number for number, with the same
    draws from the loop's generator (labels, flow and moving windows included)."""
    import random

    from bair_world.data import collate
    from bair_world.data.open import open_dataset
    from bair_world.data.packed import pack_dataset
    from bair_world.training.data import device_window, random_crop

    root = sim_root if form == "folders" else pack_dataset(sim_root, tmp_path / "packed", progress=False)
    stored = open_dataset(root, "train", targets=True, stored=True)
    floats = open_dataset(root, "train", targets=True)
    item = stored[0]
    assert item["frames"].dtype == torch.uint8 and item["frames"].shape == (30, 3, 64, 64)
    assert item["flow"].dtype == torch.int8
    batch, reference = collate([stored[i] for i in range(4)]), collate([floats[i] for i in range(4)])
    rng, reference_rng = random.Random(5), random.Random(5)
    for _ in range(3):
        window = device_window(batch, 8, rng, 2.0, torch.device("cpu"))
        expected = random_crop(reference, 8, reference_rng, 2.0)
        for got, want in zip(window, expected):
            assert got.dtype == want.dtype and torch.equal(got, want)
    assert rng.getstate() == reference_rng.getstate()  # the same draws: a resumed run crops the same windows
