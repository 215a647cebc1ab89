"""The runnable examples run: each script's main() at its smallest setting, on the bundled model (a tiny
random one where the test checks plumbing, not what a trained model shows).

Examples are what a new user copies first; a renamed function or a changed signature that breaks
one must fail the suite, not the user.
"""

from __future__ import annotations

from helpers import load_script


def load(name: str):
    return load_script("examples", name)


def test_replay_psnr_prints_the_curve_and_writes_the_video(tmp_path, capsys):
    import imageio.v3 as iio
    import numpy as np

    from bair_world.envs import BairWorldEnv

    video = tmp_path / "replay.gif"
    assert load("replay_psnr").main(["--index", "1", "--device", "cpu", "--video", str(video)]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.split() and line.split()[0].isdigit()]
    assert [int(r[0]) for r in rows] == list(range(1, 29))  # one row per predicted step of the episode
    env = BairWorldEnv(device="cpu")  # the same replay, stepped here: reset seed 0, reference 1
    _, info = env.reset(seed=0, options={"index": 1})
    curve, truncated = [], False
    while not truncated:
        _, _, _, truncated, info = env.step(np.concatenate([info["action"], info["position"]]))
        curve.append(info["psnr"])
    np.testing.assert_allclose([float(r[2]) for r in rows], curve, atol=0.006)  # printed with 2 decimals
    model_mean, copy_mean = (float(v) for v in out.splitlines()[-2 if "wrote" in out else -1].split()[1:3])
    assert model_mean == round(float(np.mean(curve)), 2) and model_mean > copy_mean  # beats doing nothing
    frames = iio.imread(video, index=None)  # (T, H, W, 3): recorded | predicted | error, one frame a step
    assert len(frames) == 30 and len({f.tobytes() for f in frames}) == 30


def test_cem_planner_prints_the_table_and_writes_videos(tmp_path, capsys):
    """On a tiny random checkpoint: the script's plumbing, not planning quality (the bundled model took 90 s)."""
    from helpers import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    argv = ["--episodes", "1", "--num-envs", "1", "--horizon", "2", "--population", "4", "--elites", "2",
            "--iterations", "1", "--threads", "1", "--device", "cpu", "--samples", "2", "--out-dir", str(tmp_path),
            "--checkpoint", str(ckpt)]
    assert load("cem_planner").main(argv) == 0
    out = capsys.readouterr().out
    for row in ("random", "cem-model", "cem-uncertainty"):
        assert f"{row}" in out
    assert "success" in out and len(list(tmp_path.glob("*.mp4"))) == 6  # 3 policies x 2 worlds


def test_cem_planner_rejects_a_bad_config(capsys):
    assert load("cem_planner").main(["--elites", "50", "--population", "4"]) == 2
    assert "error" in capsys.readouterr().err
    assert load("cem_planner").main(["--worlds", "mars"]) == 2
    assert "--worlds" in capsys.readouterr().err


def test_goal_ppo_trains_and_compares(tmp_path, capsys):
    argv = ["--timesteps", "128", "--num-envs", "1", "--episodes", "1", "--train-references", "4",
            "--threads", "1", "--out-dir", str(tmp_path), "--save", str(tmp_path / "ppo.zip")]
    assert load("goal_ppo").main(argv) == 0
    out = capsys.readouterr().out
    assert "ppo" in out and (tmp_path / "ppo.zip").exists() and len(list(tmp_path.glob("*.mp4"))) == 4
    from stable_baselines3 import PPO

    assert PPO.load(tmp_path / "ppo.zip").num_timesteps >= 128  # the saved policy is the trained one
    import imageio.v3 as iio

    for video in tmp_path.glob("*.mp4"):
        assert len(iio.imread(video, index=None)) >= 2, video


def test_sb3_ppo_trains_on_the_vector_env(tmp_path):
    import warnings

    out = tmp_path / "ppo.gif"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load("sb3_ppo").main(["--num-envs", "2", "--timesteps", "64", "--device", "cpu", "--out", str(out)]) == 0
    import imageio.v3 as iio

    frames = iio.imread(out, index=None)  # recorded | policy's rollout | error, one frame a step
    assert len(frames) >= 3 and len({f.tobytes() for f in frames}) > 1  # it moves
    assert not [w for w in caught if "precision lowered" in str(w.message)]  # float32 bounds into RescaleAction


def test_contact_sheet_without_the_real_sequence(tmp_path):
    import cv2
    import numpy as np

    from bair_world.sim import generate_sequence

    out = tmp_path / "sheet.png"
    assert load("contact_sheet").main(["--real", str(tmp_path / "absent"), "--rows", "2", "--out", str(out)]) == 0
    sheet = cv2.imread(str(out))[:, :, ::-1]  # BGR -> RGB
    zoom, label = 3, 150
    assert sheet.shape == (2 * 64 * zoom, label + 10 * 64 * zoom, 3)  # 2 synthetic rows of frames 0, 3, ..., 27
    for row, seed in enumerate((0, 1)):
        frames, _, _ = generate_sequence(seed)
        tile = sheet[row * 192:(row + 1) * 192:zoom, label + 4 * 192:label + 5 * 192:zoom]  # frame 12, back to 64x64
        np.testing.assert_array_equal(tile, frames[12])
    assert not list(tmp_path.glob(".*"))  # no temporary left beside it


def test_frame_strip_shows_the_recorded_frames_and_each_checkpoints_rollout(tmp_path, capsys):
    import cv2
    import numpy as np

    from bair_world.checkpoint import default_checkpoint
    from bair_world.data.bair_folder import write_sequence
    from bair_world.sim import rollout

    r = rollout(7, length=10)
    write_sequence(tmp_path / "data" / "test" / "traj_0" / "0", r.frames, r.actions, r.positions)
    out = tmp_path / "strip.png"
    argv = ["--out", str(out), "--data-root", str(tmp_path / "data"), "--steps", "1,5,9",
            "--checkpoint", f"a={default_checkpoint()}", "--checkpoint", f"b={default_checkpoint()}"]
    assert load("frame_strip").main(argv) == 0
    image = cv2.imread(str(out))[:, :, ::-1]  # BGR -> RGB
    assert image.shape == (16 + 3 * 128, 80 + 3 * 128, 3)  # header + 3 rows (recorded, a, b) of 3 frames at 2x
    recorded_t5 = image[16:16 + 128:2, 80 + 128:80 + 256:2]  # the 2x tile, subsampled back to 64x64
    np.testing.assert_array_equal(recorded_t5, r.frames[5])
    a, b = image[16 + 128:16 + 256, 80:], image[16 + 256:, 80:]
    np.testing.assert_array_equal(a, b)  # same checkpoint, same seeded latents: the same rollout
    assert "3 rows x 3 frames" in capsys.readouterr().out


def test_frame_strip_under_pushes_shows_the_true_world_the_model_and_its_error(tmp_path, capsys):
    import cv2
    import numpy as np

    from helpers import make_tiny_checkpoint

    from bair_world import counterfactual
    from bair_world.data.synthetic import write_dataset

    root = write_dataset(tmp_path / "data", {"test": 1}, workers=1, progress=False, length=10).root
    ckpt = make_tiny_checkpoint(tmp_path / "tiny")  # which model does not matter: its tile is compared below
    out = tmp_path / "push.png"
    argv = ["--out", str(out), "--data-root", str(root), "--steps", "1,5,9", "--actions", "push",
            "--checkpoint", f"tiny={ckpt}"]
    assert load("frame_strip").main(argv) == 0
    image = cv2.imread(str(out))[:, :, ::-1]  # BGR -> RGB
    assert image.shape == (16 + 3 * 128, 80 + 3 * 128, 3)  # header + true world, model, error; 3 frames at 2x
    true, pred = counterfactual.rollout(ckpt, root, index=0, source="push", split="test", n_future=8)
    tile = lambda row, col: image[16 + row * 128:16 + (row + 1) * 128:2, 80 + col * 128:80 + (col + 1) * 128:2]
    np.testing.assert_array_equal(tile(0, 2), true[9])  # the true world pushed by the script, step 9
    np.testing.assert_array_equal(tile(1, 2), pred[9])  # the model under the same actions
    np.testing.assert_array_equal(tile(2, 2), np.abs(pred[9].astype(int) - true[9]).astype(np.uint8))
    assert not np.array_equal(true[9], true[1])  # the arm moved in the true world
    assert "3 rows x 3 frames" in capsys.readouterr().out


def test_frame_strip_rejects_steps_outside_the_sequence(tmp_path):
    import pytest

    with pytest.raises(SystemExit):
        load("frame_strip").main(["--out", str(tmp_path / "x.png"), "--steps", "1,30"])
    assert not (tmp_path / "x.png").exists()
