"""Goal envs under Gymnasium-Robotics' GoalEnv keys (``robotics_keys=True``) and SB3's HerReplayBuffer."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import bair_world  # noqa: F401  (registers the envs)
from helpers import FakeReferences, make_tiny_checkpoint
from bair_world.envs.goal_spaces import ROBOTICS_KEYS
from bair_world.envs.references import SimReferences
from bair_world.metrics import goal_distance


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


def _make(env_id: str, ckpt, **kw):
    if env_id == "BairWorldGoal-v0":
        return gym.make(env_id, checkpoint=ckpt, references=FakeReferences(length=8), device="cpu", **kw)
    return gym.make(env_id, references=SimReferences(size=2, length=6), **kw)


@pytest.mark.parametrize("env_id", ["BairWorldGoal-v0", "PushWorldGoal-v0"])
def test_robotics_keys_rename_todays_observation_and_pass_both_checkers(env_id, ckpt):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    plain, goal_env = _make(env_id, ckpt), _make(env_id, ckpt, robotics_keys=True)
    assert set(goal_env.observation_space.spaces) == {"observation", "achieved_goal", "desired_goal"}
    assert not hasattr(plain.unwrapped, "compute_reward")  # today's keys: not a GoalEnv to SB3's checker
    obs, _ = plain.reset(seed=3)
    renamed, _ = goal_env.reset(seed=3)
    action = plain.action_space.sample()
    for _ in range(2):
        assert all(np.array_equal(obs[k], renamed[ROBOTICS_KEYS[k]]) for k in obs)  # same values, new keys
        obs, reward, *_ = plain.step(action)
        renamed, goal_reward, terminated, _, info = goal_env.step(action)
    env = goal_env.unwrapped
    assert goal_reward == reward == env.compute_reward(renamed["achieved_goal"], renamed["desired_goal"], info)
    assert terminated == env.compute_terminated(renamed["achieved_goal"], renamed["desired_goal"], info)
    check_env(env)
    sb3_check_env(env, warn=True)  # includes the GoalEnv checks: reward from compute_reward, batched


def test_compute_reward_is_batched_and_is_minus_the_goal_distance(ckpt):
    env = _make("BairWorldGoal-v0", ckpt, robotics_keys=True).unwrapped
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (2, 5, 3, 64, 64, 3), dtype=np.uint8)  # (batch 5, 3) frames each
    rewards = env.compute_reward(a, b, None)
    assert rewards.shape == (5, 3) and np.array_equal(rewards, -goal_distance(a, b))
    assert np.array_equal(env.compute_reward(a, a, None), np.zeros((5, 3)))
    assert env.compute_terminated(a, a, None).all() and not env.compute_truncated(a, b, None).any()


def test_sac_with_her_trains_on_the_learned_goal_env(ckpt):
    """32 steps: 5 whole episodes in the buffer and 2 gradient steps after learning_starts, which is
    all the relabelling check below needs (it was 300 steps, 218 s on a loaded machine)."""
    from stable_baselines3 import SAC, HerReplayBuffer
    from stable_baselines3.common.vec_env import DummyVecEnv

    def make():
        env = _make("BairWorldGoal-v0", ckpt, robotics_keys=True)
        return gym.wrappers.RescaleAction(env, -1.0, 1.0)

    venv = DummyVecEnv([make])
    model = SAC("MultiInputPolicy", venv, replay_buffer_class=HerReplayBuffer,
                replay_buffer_kwargs={"n_sampled_goal": 4, "goal_selection_strategy": "future"},
                buffer_size=1000, learning_starts=24, batch_size=16, gradient_steps=1, train_freq=4, seed=0,
                device="cpu", policy_kwargs={"net_arch": [32], "features_extractor_kwargs": {"cnn_output_dim": 16}})
    model.learn(total_timesteps=32)
    assert model.num_timesteps == 32 and model.replay_buffer.size() == 32 and model._n_updates > 0

    # HER relabels goals and recomputes rewards through compute_reward; SB3 stores the frames
    # channel-first, (64, 3, 64, 64), and compute_reward takes them so
    sample = model.replay_buffer.sample(64)
    achieved = sample.next_observations["achieved_goal"].numpy().astype(np.uint8)
    desired = sample.observations["desired_goal"].numpy().astype(np.uint8)
    env = venv.envs[0].unwrapped
    rewards = sample.rewards.numpy()[:, 0]
    np.testing.assert_allclose(rewards, env.compute_reward(achieved, desired, None), rtol=1e-6)
    np.testing.assert_array_equal(env.compute_reward(achieved, desired, None),
                                  env.compute_reward(achieved.transpose(0, 2, 3, 1), desired.transpose(0, 2, 3, 1), None))
    goals = {ref.frames[-1].tobytes() for ref in (env.episodes.reference_pool[i] for i in range(len(env.episodes.reference_pool)))}
    relabelled = [d.transpose(1, 2, 0).tobytes() not in goals for d in desired]
    assert any(relabelled) and not all(relabelled)  # 'future' goals beside the episodes' own ones
    venv.close()
