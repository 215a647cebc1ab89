"""The native vector env: make_vec, equivalence with single envs, next-step autoreset, reset_mask."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import bair_world  # noqa: F401  (registers BairWorld-v0)
from helpers import FakeReferences, make_tiny_checkpoint
from bair_world.envs import BairWorldEnv, BairWorldVectorEnv

N = 3


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture
def venv(ckpt):
    envs = gym.make_vec("BairWorld-v0", num_envs=N, checkpoint=ckpt, references=FakeReferences(), device="cpu")
    yield envs
    envs.close()


def replay_actions(infos):
    return np.concatenate([infos["action"], infos["position"]], axis=1)  # (N, 4) + (N, 3) -> (N, 7)


def test_make_vec_uses_the_native_vector_env(venv):
    assert isinstance(venv.unwrapped, BairWorldVectorEnv)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert venv.observation_space.shape == (N, 64, 64, 3) and venv.observation_space.dtype == np.uint8
    assert venv.action_space.shape == (N, 7)
    assert venv.unwrapped.max_episode_steps == 28


def test_rows_match_single_envs_with_the_same_seeds(ckpt, venv):
    seed = 7
    obs, infos = venv.reset(seed=seed)
    singles = [BairWorldEnv(checkpoint=ckpt, references=FakeReferences(), device="cpu") for _ in range(N)]
    single_out = [e.reset(seed=seed + i) for i, e in enumerate(singles)]
    np.testing.assert_array_equal(obs, np.stack([o for o, _ in single_out]))
    np.testing.assert_array_equal(infos["index"], [i["index"] for _, i in single_out])
    rng = np.random.default_rng(0)
    for _ in range(6):
        actions = rng.uniform(venv.single_action_space.low, venv.single_action_space.high, (N, 7)).astype(np.float32)
        obs, _, _, _, infos = venv.step(actions)
        outs = [e.step(a) for e, a in zip(singles, actions)]
        expected = np.stack([o[0] for o in outs])
        # batched and single convolutions may round differently: allow an off-by-one in a few pixels
        diff = np.abs(obs.astype(int) - expected.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01
        np.testing.assert_allclose(infos["psnr"], [o[4]["psnr"] for o in outs], atol=0.05)


def test_next_step_autoreset(venv):
    obs, infos = venv.reset(seed=0)
    for step in range(28):
        obs, rewards, terminated, truncated, infos = venv.step(replay_actions(infos))
        assert not terminated.any() and (rewards == 0).all()
        assert truncated.all() == (step == 27)
    assert infos["_psnr"].all()
    obs, rewards, terminated, truncated, infos = venv.step(replay_actions(infos))
    assert not truncated.any() and not infos["_psnr"].any()  # a reset, not a step
    assert (infos["step"] == 0).all()
    for row, ref in enumerate(venv.unwrapped.episode_references):
        np.testing.assert_array_equal(obs[row], ref.frames[1])
    obs, _, _, truncated, infos = venv.step(replay_actions(infos))
    assert (infos["step"] == 1).all() and infos["_psnr"].all()


def test_reset_mask_resets_only_the_masked_rows(venv):
    obs, infos = venv.reset(seed=1)
    for _ in range(3):
        obs, _, _, _, infos = venv.step(replay_actions(infos))
    mask = np.array([True, False, True])
    new_obs, new_infos = venv.reset(options={"reset_mask": mask, "index": 4})
    np.testing.assert_array_equal(new_infos["_step"], mask)
    np.testing.assert_array_equal(new_obs[1], obs[1])  # untouched row keeps its frame
    refs = venv.unwrapped.episode_references
    assert refs[0].index == 4 and refs[2].index == 4
    np.testing.assert_array_equal(new_obs[0], refs[0].frames[1])
    _, _, _, _, infos = venv.step(replay_actions(infos))
    np.testing.assert_array_equal(infos["step"], [1, 4, 1])


def test_bad_actions_and_masks_are_errors(venv):
    venv.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(3, 7\)"):
        venv.step(np.zeros((N, 6), np.float32))
    bad = np.zeros((N, 7), np.float32)
    bad[2, 4] = np.nan
    with pytest.raises(ValueError, match="env 2, column 4"):
        venv.step(bad)
    with pytest.raises(ValueError, match="reset_mask"):
        venv.reset(options={"reset_mask": np.array([1, 0, 1])})


def test_first_reset_must_cover_every_row(ckpt):
    envs = BairWorldVectorEnv(2, checkpoint=ckpt, references=FakeReferences(), device="cpu")
    with pytest.raises(RuntimeError, match="before reset"):
        envs.step(np.zeros((2, 7), np.float32))
    with pytest.raises(RuntimeError, match="first reset"):
        envs.reset(options={"reset_mask": np.array([True, False])})


def test_seed_lists_and_render(ckpt):
    envs = BairWorldVectorEnv(2, checkpoint=ckpt, references=FakeReferences(), device="cpu", render_mode="rgb_array")
    a, _ = envs.reset(seed=[5, 9])
    b, _ = envs.reset(seed=5)  # = [5, 6]
    np.testing.assert_array_equal(a[0], b[0])
    frames = envs.render()
    assert len(frames) == 2 and frames[1].shape == (64, 64, 3)
    np.testing.assert_array_equal(frames[0], b[0])


def test_bfloat16_vector_env_rows_follow_single_bfloat16_envs(ckpt):
    venv = gym.make_vec("BairWorld-v0", num_envs=N, checkpoint=ckpt, references=FakeReferences(), device="cpu",
                        precision="bfloat16")
    assert venv.unwrapped.episodes.core.precision == "bfloat16"
    singles = [BairWorldEnv(checkpoint=ckpt, references=FakeReferences(), device="cpu", precision="bfloat16")
               for _ in range(N)]
    obs, infos = venv.reset(seed=3)
    np.testing.assert_array_equal(obs, np.stack([e.reset(seed=3 + i)[0] for i, e in enumerate(singles)]))
    for _ in range(4):
        actions = replay_actions(infos)
        obs, _, _, _, infos = venv.step(actions)
        expected = np.stack([e.step(a)[0] for e, a in zip(singles, actions)])
        # bf16 GEMMs of batch N and batch 1 may round differently: frames stay within a few levels
        diff = np.abs(obs.astype(int) - expected.astype(int))
        assert obs.dtype == np.uint8 and diff.mean() < 0.5 and diff.max() <= 8
    venv.close()
    with pytest.raises(ValueError, match="precision must be one of"):
        BairWorldVectorEnv(2, checkpoint=ckpt, references=FakeReferences(), device="cpu", precision="int8")


def _assert_same_infos(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_infos_are_gymnasiums_layout_of_the_single_env_infos(venv):
    """The vector env builds its infos as columns; they equal Gymnasium's `_add_info` of each row's
    single-env info (same keys, dtypes, values and masks), also in a step where a row restarts."""
    env = venv.unwrapped
    obs, infos = venv.reset(seed=3)
    expected = {}
    for row in range(N):
        env._add_info(expected, env.episodes.row_info(row), row)
    _assert_same_infos(infos, expected)
    env.episodes.t[1] = env.episodes.last[1] - 1  # row 1 truncates at the next step, restarts at the one after
    for step in range(2):
        before = [env.episodes.row_info(row) for row in range(N)]
        _, _, _, truncated, infos = venv.step(replay_actions(infos))
        stepped = [row for row in range(N) if not (step == 1 and row == 1)]
        expected = {}
        for row in range(N):
            metrics = {"psnr": float(infos["psnr"][row])} if row in stepped else None
            env._add_info(expected, env.episodes.row_info(row, metrics), row)
        assert truncated[1] == (step == 0)
        if step == 1:  # the restarted row: a new episode's first info, no psnr
            assert infos["step"][1] == 0 and not infos["_psnr"][1] and before[1]["step"] > 0
        _assert_same_infos(infos, expected)
