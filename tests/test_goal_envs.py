"""BairWorldGoal-v0, PushWorld-v0, PushWorldGoal-v0: checkers, goal/reward/success, true-world replay, bad input."""

from __future__ import annotations

import warnings
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest

import bair_world  # noqa: F401  (registers the envs)
from helpers import FakeReferences, make_tiny_checkpoint
from bair_world.envs.goal import BairWorldGoalEnv
from bair_world.envs.goal_eval import RandomPolicy, evaluate_goal_policy, format_table
from bair_world.envs.push_world_env import PushWorldEnv, PushWorldGoalEnv, start_world
from bair_world.envs.references import SimReferences
from bair_world.goal_tasks import SUCCESS_THRESHOLD
from bair_world.metrics import goal_distance
from bair_world.sim import SimConfig


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="module")
def sim_refs():
    return SimReferences(size=4, length=8)


def learned(ckpt, references, **kw):
    return BairWorldGoalEnv(checkpoint=ckpt, references=references, device="cpu", **kw)


def test_gym_make_builds_the_three_new_ids(ckpt, sim_refs):
    envs = [gym.make("BairWorldGoal-v0", checkpoint=ckpt, references=FakeReferences(), device="cpu"),
            gym.make("PushWorld-v0", references=sim_refs), gym.make("PushWorldGoal-v0", references=sim_refs),
            gym.make("bair_world:PushWorldGoal-v0", references=sim_refs)]
    for env in envs:
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        assert env.spec.max_episode_steps == 28
        env.close()
    assert envs[0].observation_space == envs[2].observation_space
    assert envs[0].action_space == envs[2].action_space


@pytest.mark.parametrize("which", ["learned_goal", "true_goal", "true"])
def test_env_checkers_pass(ckpt, sim_refs, which):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env_id, kwargs = {"learned_goal": ("BairWorldGoal-v0", {"checkpoint": ckpt, "references": FakeReferences(),
                                                           "device": "cpu"}),
                      "true_goal": ("PushWorldGoal-v0", {"references": sim_refs}),
                      "true": ("PushWorld-v0", {"references": sim_refs})}[which]
    for checker in (lambda e: check_env(e, skip_render_check=False), lambda e: sb3_check_env(e, warn=True)):
        # made through gym.make so the checker can rebuild it with the other render modes
        env = gym.make(env_id, render_mode="rgb_array", **kwargs).unwrapped
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            checker(env)
        # the action box is in BAIR units by design (wrap with RescaleAction for [-1, 1])
        assert [str(w.message) for w in caught if "symmetric and normalized" not in str(w.message)] == []


def test_goal_reward_and_success_semantics(ckpt):
    env = learned(ckpt, FakeReferences())
    obs, info = env.reset(seed=2, options={"index": 3})
    ref = env.reference
    assert set(obs) == {"image", "goal", "position"}
    np.testing.assert_array_equal(obs["goal"], ref.frames[-1])  # the reference's final frame: reachable
    np.testing.assert_array_equal(obs["image"], ref.frames[1])
    np.testing.assert_allclose(obs["position"], ref.positions[1])
    assert info["goal_distance"] == pytest.approx(goal_distance(ref.frames[1], ref.frames[-1]))
    obs, reward, terminated, truncated, info = env.step(np.array([0.02, -0.01, 1, 1]))
    assert reward == pytest.approx(-info["goal_distance"]) and reward < 0
    assert info["goal_distance"] == pytest.approx(goal_distance(obs["image"], obs["goal"]))
    assert terminated == info["is_success"] == (info["goal_distance"] <= SUCCESS_THRESHOLD)
    # a threshold everything meets succeeds and terminates at once; a threshold of 0 runs to truncation
    easy = learned(ckpt, FakeReferences(), success_threshold=1.0)
    easy.reset(seed=0)
    _, _, terminated, truncated, info = easy.step(np.zeros(4))
    assert terminated and info["is_success"] and not truncated
    hard = learned(ckpt, FakeReferences(length=6), success_threshold=0.0)
    hard.reset(seed=0)
    steps, done = 0, False
    while not done:
        _, _, terminated, truncated, info = hard.step(np.zeros(4))
        steps, done = steps + 1, terminated or truncated
    assert truncated and not terminated and not info["is_success"] and steps == 4  # 6 frames - 2 context
    with pytest.raises(RuntimeError, match="after the episode ended"):
        hard.step(np.zeros(4))


def test_same_seed_same_episode_and_same_reference_in_both_worlds(ckpt, sim_refs):
    a, b = learned(ckpt, sim_refs), learned(ckpt, sim_refs)
    true = PushWorldGoalEnv(references=sim_refs)
    oa, ia = a.reset(seed=7)
    ob, _ = b.reset(seed=7)
    ot, it = true.reset(seed=7)
    assert ia["index"] == it["index"]
    for key in oa:
        np.testing.assert_array_equal(oa[key], ob[key])
        np.testing.assert_allclose(oa[key], ot[key], atol=1e-6)
    rng = np.random.default_rng(0)
    for _ in range(4):
        action = rng.uniform(a.action_space.low, a.action_space.high)
        oa, *_ = a.step(action)
        ob, *_ = b.step(action)
        ot, *_ = true.step(action)
        np.testing.assert_array_equal(oa["image"], ob["image"])
        # the learned world derives positions with the sim's own kinematics: same as the true arm
        np.testing.assert_allclose(oa["position"], ot["position"], atol=1e-6)


def test_true_env_starts_in_the_reference_state_and_replay_reaches_the_goal(sim_refs):
    env = PushWorldGoalEnv(references=sim_refs)
    obs, info = env.reset(seed=0, options={"index": 1})
    ref = env.reference
    frames, conds = env.history
    np.testing.assert_array_equal(frames, ref.frames[:2])  # context frames replayed byte for byte
    np.testing.assert_array_equal(conds, ref.conds[:1])
    np.testing.assert_allclose(env.world.position, ref.positions[1], atol=1e-6)
    assert info["object_distance_m"] >= 0 and info["arm_distance_m"] > 0
    done, t = False, 1
    while not done:
        obs, reward, terminated, truncated, info = env.step(ref.actions[t])
        t, done = t + 1, terminated or truncated
        np.testing.assert_array_equal(obs["image"], ref.frames[t])
    assert terminated and info["is_success"]
    assert info["goal_distance"] == 0.0 and info["object_distance_m"] < 1e-6 and info["arm_distance_m"] < 1e-6


def test_true_world_env_replays_the_reference_with_its_conds(sim_refs):
    env = PushWorldEnv(references=sim_refs)
    obs, info = env.reset(seed=0, options={"index": 2})
    np.testing.assert_array_equal(obs, env.reference.frames[1])
    truncated = False
    while not truncated:
        obs, reward, terminated, truncated, info = env.step(np.concatenate([info["action"], info["position"]]))
        assert reward == 0.0 and not terminated and info["psnr"] > 60
    assert info["frame_index"] == 7


def test_true_world_refuses_references_it_cannot_replay(sim_refs):
    with pytest.raises(TypeError, match="SimReferences"):
        PushWorldGoalEnv(references=FakeReferences())
    with pytest.raises(RuntimeError, match="frame 0 differs"):
        start_world(sim_refs, 0, 2, replace(SimConfig(), light_jitter=0.3))


@pytest.mark.parametrize("bad, match", [(np.zeros(7), "shape"), ([0.0, np.nan, 0, 0], "NaN"),
                                        ("left", "numeric"), (np.zeros((1, 4)), "shape")])
def test_bad_actions_raise(ckpt, sim_refs, bad, match):
    for env in (learned(ckpt, FakeReferences()), PushWorldGoalEnv(references=sim_refs)):
        with pytest.raises(RuntimeError, match="before reset"):
            env.step(np.zeros(4))
        env.reset(seed=0)
        with pytest.raises(ValueError, match=match):
            env.step(bad)
    with pytest.raises(ValueError, match="unknown reset options"):
        PushWorldGoalEnv(references=sim_refs).reset(options={"idx": 0})
    with pytest.raises(ValueError, match="success_threshold"):
        PushWorldGoalEnv(references=sim_refs, success_threshold=-1)


def test_out_of_box_actions_are_clipped_and_quantised(sim_refs):
    a, b = PushWorldGoalEnv(references=sim_refs), PushWorldGoalEnv(references=sim_refs)
    a.reset(seed=1)
    b.reset(seed=1)
    oa, *_ = a.step(np.array([0.5, -0.5, 3.4, 7.0]))
    ob, *_ = b.step(np.array([0.07, -0.07, 3.0, 2.0]))
    np.testing.assert_array_equal(oa["image"], ob["image"])
    np.testing.assert_array_equal(a.history[1], b.history[1])


def test_evaluation_summarises_both_worlds(ckpt, sim_refs):
    ev_true = evaluate_goal_policy([PushWorldGoalEnv(references=sim_refs) for _ in range(2)], RandomPolicy(0),
                                   [0, 1, 2], record=1)
    ev_learned = evaluate_goal_policy([learned(ckpt, sim_refs)], RandomPolicy(0), [0, 1])
    s = ev_true.summary()
    assert s["episodes"] == 3 and 0 <= s["success_rate"] <= 1 and s["goal_distance"] > 0
    assert np.isfinite(s["object_distance_m"]) and np.isnan(ev_learned.summary()["object_distance_m"])
    assert [e["index"] for e in ev_true.episodes] == [0, 1, 2]
    idx, frames, goal = ev_true.videos[0]
    assert idx == 0 and frames.shape[1:] == (64, 64, 3) and len(frames) == 2 + ev_true.episodes[0]["steps"]
    table = format_table([("random", "true", ev_true), ("random", "learned", ev_learned)])
    assert "random" in table and "n/a" in table


#: The info keys of every world env (`bair_world.envs.episodes.episode_info`), after a step with ``psnr``.
WORLD_INFO = {"action", "position", "step", "frame_index", "index", "rollout_id"}
#: The info keys of every goal env (`bair_world.envs.goal_task.GoalEnvBase`).
GOAL_INFO = {"goal_distance", "is_success", "arm_distance_m", "step", "index", "rollout_id"}


def test_every_env_exposes_the_same_info_keys(ckpt, sim_refs):
    learned = dict(checkpoint=ckpt, references=sim_refs, device="cpu")
    worlds = {"BairWorld-v0": (gym.make("BairWorld-v0", **learned), set()),
              "PushWorld-v0": (gym.make("PushWorld-v0", references=sim_refs), {"true_position"}),
              "BairWorldGoal-v0": (gym.make("BairWorldGoal-v0", **learned), set()),
              "PushWorldGoal-v0": (gym.make("PushWorldGoal-v0", references=sim_refs), {"object_distance_m"})}
    for name, (env, extras) in worlds.items():
        base = GOAL_INFO if "Goal" in name else WORLD_INFO
        _, info = env.reset(seed=0)
        assert set(info) == base | extras, name
        _, *_, info = env.step(env.action_space.sample())
        assert set(info) == base | extras | ({"psnr"} if "Goal" not in name else set()), name
    venv = gym.make_vec("BairWorld-v0", num_envs=2, **learned)
    _, infos = venv.reset(seed=0)
    assert set(infos) == WORLD_INFO | {f"_{k}" for k in WORLD_INFO}
    _, *_, infos = venv.step(venv.action_space.sample())
    assert set(infos) == (WORLD_INFO | {"psnr"}) | {f"_{k}" for k in WORLD_INFO | {"psnr"}}


def test_true_world_envs_take_the_learned_worlds_options(ckpt, sim_refs):
    # the same keywords make both worlds; device, precision and compile are unused there
    options = dict(checkpoint=ckpt, references=sim_refs, device="cpu", precision="bfloat16", compile=False)
    true, learned = PushWorldEnv(**options), gym.make("BairWorld-v0", **options)
    assert true.n_past == learned.unwrapped.n_past == 2 and true.action_space == learned.action_space
    assert PushWorldGoalEnv(**options).n_past == 2
    with pytest.raises(TypeError, match="'chekpoint'"):
        PushWorldEnv(chekpoint=ckpt)
    with pytest.raises(TypeError, match="SimReferences"):
        PushWorldEnv(references=FakeReferences())
    with pytest.raises(TypeError, match="'n_past'"):  # the context length is the checkpoint's (or 2), not a knob
        PushWorldEnv(references=sim_refs, checkpoint=ckpt, n_past=3)
