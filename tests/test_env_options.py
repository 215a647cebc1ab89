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


# --- num_envs bounded by memory ------------------------------------------------------------------

def test_a_vector_env_larger_than_the_memory_is_refused_naming_the_estimate(ckpt, monkeypatch):
    from bair_world.envs import memory

    monkeypatch.setattr(memory, "host_available_bytes", lambda: 8 * 2**20, raising=False)  # 8 MiB free
    with pytest.raises(ValueError) as info:
        gym.make_vec("BairWorld-v0", num_envs=64, checkpoint=ckpt, device="cpu", references=FakeReferences(3))
    message = str(info.value)
    assert message.startswith("num_envs=64 needs about ") and "MiB per env, estimated" in message
    assert "more than the 0.01 GiB available; at most about" in message


def test_a_billion_envs_are_refused_at_once(ckpt):
    import time

    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"num_envs=1,000,000,000 needs about .* GiB of host memory"):
        gym.make_vec("BairWorld-v0", num_envs=10**9, checkpoint=ckpt, device="cpu", references=FakeReferences(3))
    assert time.perf_counter() - start < 5  # nothing was allocated per env


def test_the_estimate_covers_a_rows_frames_and_the_models_activations(ckpt):
    import torch

    from bair_world.checkpoint import load_model
    from bair_world.envs.memory import HOST_BYTES_PER_ENV, model_bytes_per_env

    model = load_model(ckpt)
    per_env = model_bytes_per_env(model, torch.device("cpu"))
    assert 4 * 64 * 64 * 3 * 4 < per_env < 64 * 2**20  # at least a few float frames, far below a GiB
    assert HOST_BYTES_PER_ENV > 30 * 64 * 64 * 3 and not model.training
