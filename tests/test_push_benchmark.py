"""The pushing benchmark: the goal set, success from the true state, planner batching, a tiny end-to-end plan."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from helpers import make_tiny_checkpoint
from bair_world.checkpoint import load_model
from bair_world.envs.goal import BairWorldGoalEnv
from bair_world.envs.goal_eval import DoNothingPolicy, PlannerPolicy, evaluate_goal_policy, plan_context
from bair_world.envs.push_world_env import PushWorldGoalEnv, start_world
from bair_world.envs.references import SimReferences
from bair_world.goal_tasks import weighted_distance
from bair_world.planning import CEMConfig, CEMPlanner, ModelDynamics, SimDynamics
from bair_world.push_goals import MIN_MOVE, goal_weights, push_goals
from bair_world.sim import sequence_worlds
from bair_world.world_model import WorldModel

REFS = SimReferences(size=40, length=12)


@pytest.fixture(scope="module")
def goals():
    return push_goals(3, REFS, start=0)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


def test_every_goal_object_really_moved_and_the_goal_is_the_worlds_state(goals):
    for g in goals:
        assert g.move >= MIN_MOVE
        for t, world, _ in sequence_worlds(REFS.seed_offset + g.index, g.frame + 1):
            if t == 1:
                np.testing.assert_allclose(world.object_poses[g.obj, :2], g.start_xy)
        np.testing.assert_array_equal(world.frame, g.goal_frame)  # the goal image is the world's frame then
        np.testing.assert_allclose(world.object_poses[g.obj, :2], g.goal_xy)
        assert np.linalg.norm(world.object_poses[g.obj, :2] - g.start_xy) >= MIN_MOVE
        assert g.weights.shape == (64, 64) and g.weights.sum() == pytest.approx(1.0, abs=1e-5)


def test_push_success_is_computed_from_the_true_state(goals):
    env = PushWorldGoalEnv(references=REFS, task="push", push_goals=goals)
    g = goals[0]
    obs, info = env.reset(seed=0, options={"index": 0})
    assert not info["is_success"] and info["object_distance_m"] == pytest.approx(g.move)
    np.testing.assert_array_equal(obs["goal"], g.goal_frame)
    # replaying the reference's own actions reaches the goal state: success, judged on the poses
    ref = env.reference
    for t in range(1, g.frame):
        obs, reward, terminated, truncated, info = env.step(ref.actions[t])
        if terminated:
            break
    assert terminated and info["is_success"] and info["object_distance_m"] <= env.task.tolerance
    assert info["object_distance_m"] == pytest.approx(g.object_error(env.world.object_poses))
    # moving the object by hand (same images) changes the verdict: success reads the state
    env.reset(seed=0, options={"index": 0})
    assert not env.task.success(env._state(), g)
    env.world.physics.bodies[g.obj].position = tuple(g.goal_xy)
    assert env.task.success(env._state(), g)


def test_push_task_passes_both_checkers(goals):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    for keys in (False, True):
        env = PushWorldGoalEnv(references=REFS, task="push", push_goals=goals, robotics_keys=keys,
                               render_mode="rgb_array")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_env(env, skip_render_check=True)
            sb3_check_env(env, warn=False)


def test_weighted_distance_sees_the_object_not_the_arm():
    start = np.zeros((64, 64, 3), np.uint8)
    goal = start.copy()
    goal[10:14, 10:14] = 200  # the object's goal
    arm = np.zeros((64, 64), bool)
    arm[40:60, 40:60] = True
    goal[40:60, 40:60] = 90  # the arm moved there
    w = goal_weights(start, goal, arm)
    assert w[12, 12] > 5 * w[50, 50] > 0
    assert weighted_distance(goal, goal, w) == 0.0
    only_arm_wrong = goal.copy()
    only_arm_wrong[40:60, 40:60] = 0
    assert weighted_distance(only_arm_wrong, goal, w) < weighted_distance(start, goal, w)


def test_planning_envs_together_equals_planning_each_alone(ckpt, goals):
    """Per-env seeding: two episodes planned in one batched call give what each gets alone."""
    model = load_model(ckpt)
    envs = [BairWorldGoalEnv(checkpoint=ckpt, references=REFS, device="cpu", task="push", push_goals=goals)
            for _ in range(2)]
    for i, env in enumerate(envs):
        env.reset(seed=0, options={"index": i})
    cfg = CEMConfig(horizon=4, population=6, elites=2, iterations=2, repeat=2, smoothing=0.5, mean_weight=0.0)
    together = CEMPlanner(ModelDynamics(WorldModel(model)), cfg, seed=3).plan_sequence(plan_context(envs))
    alone = np.concatenate([CEMPlanner(ModelDynamics(WorldModel(model)), cfg, seed=3).plan_sequence(plan_context([e]))
                            for e in envs])
    np.testing.assert_array_equal(together, alone)
    assert together.shape == (2, 4, 4)
    np.testing.assert_array_equal(together[:, 0::2], together[:, 1::2])  # rows held for 2 steps


def test_tiny_end_to_end_push_plan_in_the_true_world(goals):
    """Oracle CEM (tiny population) on one push goal, replanning every 2 steps: runs, and its
    iterations' best costs never increase (the elites are carried over)."""
    env = PushWorldGoalEnv(references=REFS, task="push", push_goals=goals)
    cfg = CEMConfig(horizon=4, population=8, elites=2, iterations=3, repeat=2, smoothing=0.5, replan_every=2,
                    mean_weight=0.0)
    dyn = SimDynamics()
    planner = CEMPlanner(dyn, cfg, seed=0)
    ev = evaluate_goal_policy([env], PlannerPolicy(planner), [0])
    nothing = evaluate_goal_policy([env], DoNothingPolicy(), [0])
    assert ev.episodes[0]["steps"] >= 1 and np.isfinite(ev.episodes[0]["object_distance_m"])
    assert (np.diff(planner.best_costs, axis=0) <= 1e-12).all()
    assert dyn.seconds > 0 and ev.policy_seconds >= dyn.seconds and ev.env_seconds > 0
    assert nothing.episodes[0]["object_distance_m"] == pytest.approx(goals[0].move, abs=1e-6)


def test_snapshot_restore_replays_the_world_exactly():
    _, world, _ = start_world(REFS, 0, 2)
    snap = world.snapshot()
    actions = [np.array([0.03, -0.02, 1, 1.0])] * 6
    first = [world.step(a, world.position).copy() for a in actions]
    world.restore(snap)
    again = [world.step(a, world.position).copy() for a in actions]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))


@pytest.mark.slow  # ~10 s on the loaded 2-core machine: six rows, two goals
def test_benchmark_script_runs_every_row_and_resumes(tmp_path, ckpt, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "push_benchmark.py"
    spec = importlib.util.spec_from_file_location("push_benchmark", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    argv = ["--goals", "2", "--num-envs", "2", "--horizon", "2", "--population", "4", "--elites", "2",
            "--iterations", "1", "--replan-every", "2", "--checkpoint", str(ckpt), "--precision", "float32",
            "--out-dir", str(tmp_path)]
    assert script.main(argv) == 2  # the readout row needs a readout saved with the checkpoint
    assert "readout" in capsys.readouterr().err
    from bair_world.checkpoint import read_config
    from bair_world.readout import StateReadout, config_for, save_readout
    from bair_world.world_model import WorldModel

    import torch

    skips = WorldModel(load_model(ckpt)).encode_skips(torch.zeros(1, 3, 64, 64))
    save_readout(tmp_path / "readout.safetensors", StateReadout(config_for(skips, hidden=8)),
                 {"model_sha256": read_config(ckpt).get("model_sha256")})
    argv += ["--readout", str(tmp_path / "readout.safetensors")]
    assert script.main(argv + ["--rows", "nothing,random,model,readout,mix,oracle"]) == 0
    out = capsys.readouterr().out
    for row in ("nothing", "random", "model", "readout", "mix", "oracle"):
        assert f"| {row} | 2 |" in out and (tmp_path / f"push-{row}.json").exists()
    assert "time split" in out and "decoder" in out and "cem" in out
    import json

    model_row = json.loads((tmp_path / "push-model.json").read_text())
    assert model_row["frames"] > 0 and "candidate frames" in out  # what a 32-goal estimate multiplies out
    assert script.main(argv + ["--rows", "model"]) == 0  # read back, not rerun
    assert "model: read" in capsys.readouterr().out
    assert script.main(["--rows", "mars"]) == 2
