"""The Stable-Baselines3 bridge: VecEnv contract (same-step reset, terminal observation), PPO smoke."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import bair_world  # noqa: F401  (registers BairWorld-v0)
from helpers import FakeReferences, make_tiny_checkpoint
from bair_world.envs import BairWorldSB3VecEnv, BairWorldVectorEnv

pytest.importorskip("stable_baselines3")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


def make_bridge(ckpt, n=2, **kw):
    return BairWorldSB3VecEnv(num_envs=n, checkpoint=ckpt, references=FakeReferences(length=5), device="cpu", **kw)


def test_vecenv_contract_with_same_step_reset(ckpt):
    env = make_bridge(ckpt)
    env.seed(3)
    obs = env.reset()
    assert obs.shape == (2, 64, 64, 3) and obs.dtype == np.uint8
    assert env.reset_infos[0]["step"] == 0
    for step in range(3):  # references of 5 frames, 2 context frames: 3 steps per episode
        acts = np.stack([np.concatenate([i["action"], i["position"]])
                         for i in (env.reset_infos if step == 0 else infos)])
        obs, rewards, dones, infos = env.step(acts)
        assert rewards.dtype == np.float32 and (rewards == 0).all()
        assert len(infos) == 2 and np.isfinite(infos[0]["psnr"])
    assert dones.all()
    for row, info in enumerate(infos):
        assert info["TimeLimit.truncated"] is True
        assert info["terminal_observation"].shape == (64, 64, 3)
        np.testing.assert_array_equal(obs[row], env.venv.episode_references[row].frames[1])  # already the next episode
        assert env.reset_infos[row]["step"] == 0
    obs, _, dones, infos = env.step(np.zeros((2, 7), np.float32))
    assert not dones.any() and infos[0]["step"] == 1  # a real step, not a second reset


def test_seeding_fixes_the_rollout_and_attributes_reach_the_vector_env(ckpt):
    a, b = make_bridge(ckpt), make_bridge(ckpt)
    a.seed(9)
    b.seed(9)
    np.testing.assert_array_equal(a.reset(), b.reset())
    act = np.tile(a.action_space.low, (2, 1))
    np.testing.assert_array_equal(a.step(act)[0], b.step(act)[0])
    assert a.get_attr("render_mode") == [None, None]
    assert a.env_is_wrapped(gym.Wrapper) == [False, False]
    with pytest.raises(TypeError, match="BairWorldVectorEnv"):
        BairWorldSB3VecEnv(gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"))


def test_actions_rescaled_to_unit_box_reach_the_native_env_in_bair_units(ckpt):
    native = gym.make_vec("BairWorld-v0", num_envs=2, vectorization_mode="vector_entry_point", checkpoint=ckpt,
                          references=FakeReferences(length=5), device="cpu")
    low, high = native.single_action_space.low, native.single_action_space.high
    bridge = BairWorldSB3VecEnv(gym.wrappers.vector.RescaleAction(native, -1.0, 1.0))
    assert bridge.action_space == gym.spaces.Box(-1.0, 1.0, (7,), np.float32)
    seen = []
    step = native.step
    native.step = lambda actions: (seen.append(np.array(actions)), step(actions))[1]
    bridge.reset()
    bridge.step(np.stack([-np.ones(7, np.float32), np.ones(7, np.float32)]))
    np.testing.assert_allclose(seen[0], np.stack([low, high]), rtol=1e-6)  # -1 -> low, +1 -> high


def test_bad_actions_surface_through_the_bridge(ckpt):
    env = make_bridge(ckpt)
    env.reset()
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.full((2, 7), np.nan, np.float32))


def test_ppo_learns_a_few_steps_on_the_bridge(ckpt):
    from stable_baselines3 import PPO

    env = make_bridge(ckpt, render_mode="rgb_array")
    assert isinstance(env.venv, BairWorldVectorEnv)
    model = PPO("CnnPolicy", env, n_steps=8, batch_size=8, n_epochs=1, seed=0, device="cpu",
                policy_kwargs={"features_extractor_kwargs": {"features_dim": 16}, "net_arch": [16]})
    model.learn(total_timesteps=16)
    assert model.num_timesteps == 16
    assert len(env.get_images()) == 2
