"""The pushing world: determinism, units, action semantics, contact gating, input checking, BAIR look."""

from dataclasses import replace

import cv2
import numpy as np
import pytest

from bair_world.sim import PushWorld, SimConfig, generate_sequence, motion_stats, rollout, sequence_motion

CFG = SimConfig()


def test_same_seed_same_bytes_and_different_seed_differs():
    a = generate_sequence(11, length=8)
    b = generate_sequence(11, length=8)
    for x, y in zip(a, b):
        assert x.tobytes() == y.tobytes()
    c = generate_sequence(12, length=8)
    assert not np.array_equal(a[0], c[0])


def test_shapes_units_and_actions_held_two_steps():
    frames, actions, positions = generate_sequence(3, length=30)
    assert frames.shape == (30, 64, 64, 3) and frames.dtype == np.uint8
    assert actions.shape == (30, 4) and positions.shape == (30, 3)
    np.testing.assert_array_equal(actions[0::2], actions[1::2])
    assert np.abs(actions[:, :2]).max() <= CFG.max_delta
    np.testing.assert_array_equal(actions[:, 2:], np.round(actions[:, 2:]))
    assert actions[:, 2].min() >= 0 and actions[:, 2].max() <= 4 and actions[:, 3].max() <= 2
    lo = [CFG.x_range[0], CFG.y_range[0], CFG.z_range[0]]
    hi = [CFG.x_range[1], CFG.y_range[1], CFG.z_range[1]]
    assert (positions >= lo).all() and (positions <= hi).all()
    assert frames.std() > 20  # a textured scene, not a blank canvas


def test_replaying_recorded_actions_reproduces_the_sequence():
    """frame t+1 = step(action_t, position_t) and position_{t+1} = world.position (the time convention)."""
    frames, actions, positions = generate_sequence(5, length=10)
    world = PushWorld(5)
    assert np.array_equal(world.reset(), frames[0])
    for t in range(9):
        assert np.array_equal(world.step(actions[t], positions[t]), frames[t + 1])
        np.testing.assert_allclose(world.position, positions[t + 1])
    assert np.array_equal(world.reset(), frames[0])  # reset rebuilds the same scene


def _drive(world: PushWorld, xy, z_cmd: int, steps: int = 8) -> None:
    for _ in range(steps):
        pos = world.position
        delta = np.clip(np.asarray(xy) - pos[:2], -0.07, 0.07)
        world.step([delta[0], delta[1], 0, z_cmd], pos)


def _single_object_world() -> PushWorld:
    cfg = replace(CFG, n_objects=(1, 1))
    for seed in range(100):  # an object well inside the workspace, so a push path fits on both sides
        world = PushWorld(seed, cfg)
        x, y, _ = world.object_poses[0]
        if abs(x - 0.6) < 0.06 and abs(y + 0.05) < 0.1:
            return world
    raise AssertionError("no seed with a central object")


def test_low_gripper_pushes_and_high_gripper_passes_over():
    world = _single_object_world()
    x, y, _ = world.object_poses[0]
    start, end = (x - 0.12, y), (x + 0.12, y)
    _drive(world, start, z_cmd=2)  # go high to the start
    assert world.position[2] > CFG.contact_z
    before = world.object_poses.copy()
    _drive(world, end, z_cmd=2)  # sweep across the object, high
    assert abs(world.position[0] - end[0]) < 0.01
    np.testing.assert_array_equal(world.object_poses, before)
    _drive(world, start, z_cmd=2)
    _drive(world, start, z_cmd=1, steps=4)  # lower behind the object
    assert world.position[2] < CFG.contact_z
    pix_before = world.object_pixels()
    _drive(world, end, z_cmd=1)  # push through, low
    moved = np.linalg.norm(world.object_poses[0, :2] - before[0, :2])
    assert moved > 0.03
    assert np.linalg.norm(world.object_pixels() - pix_before) > 2.0  # visible in the 64x64 frame


def test_step_clips_out_of_range_input():
    world = PushWorld(0)
    start = world.position
    frame = world.step([5.0, -5.0, 99, 99], [9.0, -9.0, 9.0])
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    pos = world.position
    assert CFG.x_range[0] <= pos[0] <= CFG.x_range[1] and CFG.y_range[0] <= pos[1] <= CFG.y_range[1]
    assert CFG.z_range[0] <= pos[2] <= CFG.z_range[1]
    assert np.hypot(*(pos[:2] - start[:2])) <= CFG.max_speed * CFG.frame_dt + 1e-9
    assert world.grip == 4


@pytest.mark.parametrize(
    "action, position, message",
    [
        ([0.0, np.nan, 0, 0], [0.6, 0.0, 0.25], "NaN"),
        ([0.0, 0.0, 0, 0], [0.6, np.inf, 0.25], "NaN"),
        ([0.0, 0.0, 0], [0.6, 0.0, 0.25], "shape"),
        ([0.0, 0.0, 0, 0], [[0.6, 0.0, 0.25]], "shape"),
    ],
)
def test_step_rejects_nan_and_wrong_shape(action, position, message):
    world = PushWorld(0)
    with pytest.raises(ValueError, match=message):
        world.step(action, position)


def test_motion_statistics():
    static = np.zeros((5, 64, 64, 3), np.uint8)
    assert sequence_motion(static, np.zeros((5, 3, 2))) == (0.0, 0.0)
    moving = np.zeros((5, 3, 2))
    moving[-1, 1] = [3.0, 4.0]
    assert sequence_motion(static, moving)[0] == pytest.approx(5.0)
    stats = motion_stats([(5.0, 1.0), (0.5, 3.0)])
    assert stats.moved_fraction == 0.5 and stats.mean_frame_change == 2.0 and stats.sequences == 2
    runs = [rollout(s, length=30) for s in range(6)]
    pushed = motion_stats(sequence_motion(r.frames, r.object_pixels) for r in runs)
    assert pushed.moved_fraction >= 0.5  # the scripted pusher makes contact in most sequences


def test_looks_like_bair(real_bair_root):
    """Row-by-row mean colour profile is much closer to real BAIR than a flat image of the right mean."""
    seq = real_bair_root / "test" / "GT_175" / "175"
    real = np.stack([cv2.imread(str(seq / f"{t}.png"))[:, :, ::-1] for t in range(0, 30, 3)]).astype(float)
    real_rows = real.mean(axis=(0, 2))  # (64, 3)
    flat_error = np.abs(real.mean() - real_rows).mean()
    errors = [np.abs(generate_sequence(s, length=10)[0].astype(float).mean(axis=(0, 2)) - real_rows).mean()
              for s in range(4)]
    assert np.mean(errors) < 0.75 * flat_error, (errors, flat_error)
