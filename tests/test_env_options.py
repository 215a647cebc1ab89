"""Issue 32: the envs' options are typed. A string, float, bool or negative number where an integer
belongs, or reset options that are not a dict, are refused with an error naming the option and the
value (no silent truncation of 2.5 to 2, no True read as 1); a vector env too large for the memory is
refused before it allocates."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from helpers import FakeReferences, make_tiny_checkpoint

import bair_world  # noqa: F401  (registers the envs)
from bair_world.envs.options import WorldOptions


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("opts") / "ckpt")


@pytest.mark.parametrize("value, error, says", [
    (2.5, TypeError, "num_references must be an integer, got 2.5 (float)"),
    (True, TypeError, "num_references must be an integer, got True (bool)"),
    ("3", TypeError, "num_references must be an integer, got '3' (str)"),
    (-1, ValueError, "num_references must be an integer in [1, 1,000,000,000], got -1"),
    (0, ValueError, "got 0"),
])
def test_num_references_must_be_a_positive_integer(ckpt, value, error, says):
    with pytest.raises(error) as info:
        gym.make("BairWorld-v0", checkpoint=ckpt, device="cpu", num_references=value)
    assert says in str(info.value)


@pytest.mark.parametrize("option, value, says", [
    ("compile", 1, "compile must be True or False, got 1 (int)"),
    ("compile", "no", "compile must be True or False, got 'no' (str)"),
    ("checkpoint", 3, "checkpoint must be a path or None, got 3 (int)"),
    ("data_root", ["x"], "data_root must be a path or None, got ['x'] (list)"),
    ("split", None, "split must be a string"),
    ("device", 0, "device must be a string such as 'cpu', got 0 (int)"),
])
def test_world_options_of_the_wrong_type_are_named(option, value, says):
    with pytest.raises(TypeError, match=None) as info:
        WorldOptions(**{option: value})
    assert says in str(info.value)


def test_numpy_integers_and_paths_are_accepted(tmp_path):
    options = WorldOptions(num_references=np.int64(5), checkpoint=tmp_path, compile=np.bool_(False))
    assert options.num_references == 5


@pytest.mark.parametrize("options", [5, "index", ["index"], ("index", 1)])
def test_reset_options_must_be_a_dict(ckpt, options):
    env = gym.make("BairWorld-v0", checkpoint=ckpt, device="cpu", references=FakeReferences(3))
    with pytest.raises(TypeError, match=r"BairWorld-v0: reset options must be a dict such as \{'index': 3\}, got"):
        env.reset(seed=0, options=options)
    venv = gym.make_vec("BairWorld-v0", num_envs=2, checkpoint=ckpt, device="cpu", references=FakeReferences(3))
    with pytest.raises(TypeError, match="reset options must be a dict"):
        venv.reset(seed=0, options=options)


def test_unknown_reset_options_are_named(ckpt):
    env = gym.make("BairWorld-v0", checkpoint=ckpt, device="cpu", references=FakeReferences(3))
    with pytest.raises(ValueError, match=r"unknown reset options \['idx'\]; BairWorld-v0 accepts 'index', 'latent_seed'"):
        env.reset(seed=0, options={"idx": 1})
    obs, info = env.reset(seed=0, options={"index": 2})
    assert info["index"] == 2


@pytest.mark.parametrize("kwargs, error, says", [
    ({"max_episode_steps": 2.5}, TypeError, "max_episode_steps must be an integer, got 2.5"),
    ({"max_episode_steps": "10"}, TypeError, "max_episode_steps must be an integer, got '10'"),
    ({"max_episode_steps": 0}, ValueError, "max_episode_steps must be an integer >= 1, got 0"),
])
def test_vector_env_options_are_typed(ckpt, kwargs, error, says):
    from bair_world.envs.vector import BairWorldVectorEnv

    with pytest.raises(error) as info:
        BairWorldVectorEnv(2, checkpoint=ckpt, device="cpu", references=FakeReferences(3), **kwargs)
    assert says in str(info.value)


@pytest.mark.parametrize("kwargs, error, says", [
    ({"success_threshold": "0.1"}, TypeError, "success_threshold must be a number, got '0.1' (str)"),
    ({"success_threshold": float("nan")}, ValueError, "success_threshold must be a finite number >= 0"),
    ({"robotics_keys": "no"}, TypeError, "robotics_keys must be True or False, got 'no' (str)"),
    ({"task": "push", "num_goals": 2.5}, TypeError, "num_goals must be an integer, got 2.5 (float)"),
])
def test_goal_env_options_are_typed(ckpt, kwargs, error, says):
    with pytest.raises(error) as info:
        gym.make("BairWorldGoal-v0", checkpoint=ckpt, device="cpu", references=FakeReferences(3), **kwargs)
    assert says in str(info.value)
