"""CEM planning: arm kinematics, goal distance, batched learned dynamics, and the oracle beating random in the true world."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import make_tiny_checkpoint
from bair_world.checkpoint import load_model
from bair_world.envs.goal_eval import PlannerPolicy, RandomPolicy, evaluate_goal_policy, plan_context
from bair_world.envs.push_world_env import PushWorldGoalEnv
from bair_world.envs.references import SimReferences
from bair_world.metrics import goal_distance
from bair_world.planning import CEMConfig, CEMPlanner, ModelDynamics, SimDynamics, action_bounds
from bair_world.sim import PushWorld, arm_step, quantise_action
from bair_world.world_model import WorldModel


def test_arm_step_is_the_worlds_kinematics_batched():
    rng = np.random.default_rng(0)
    world = PushWorld(5)
    starts, actions, commanded, after = [], [], [], []
    for _ in range(40):  # off-distribution: out-of-range actions and commanded positions != actual
        a = rng.uniform([-0.2, -0.2, -1, -1], [0.2, 0.2, 6, 4])
        p = world.position if rng.random() < 0.5 else rng.uniform([0.3, -0.4, 0.1], [0.9, 0.3, 0.4])
        starts.append(world.position)
        actions.append(a)
        commanded.append(p)
        world.step(a, p)
        after.append(world.position)
    np.testing.assert_array_equal(arm_step(np.stack(starts), np.stack(actions), np.stack(commanded)), np.stack(after))


def test_quantise_action_matches_what_the_world_executes():
    q = quantise_action(np.array([[0.5, -0.01, 2.6, -3.0], [-0.5, 0.02, 9.0, 1.4]]))
    np.testing.assert_allclose(q, [[0.07, -0.01, 3, 0], [-0.07, 0.02, 4, 1]])
    a, b = PushWorld(2), PushWorld(2)
    raw = np.array([0.5, -0.01, 2.6, 1.7])
    np.testing.assert_array_equal(a.step(raw, a.position), b.step(quantise_action(raw), b.position))
    np.testing.assert_array_equal(a.position, b.position)
    with pytest.raises(ValueError, match="4 columns"):
        quantise_action(np.zeros(3))


def test_goal_distance_units_and_shapes():
    black, white = np.zeros((64, 64, 3), np.uint8), np.full((64, 64, 3), 255, np.uint8)
    assert goal_distance(black, white) == pytest.approx(1.0) and goal_distance(white, white) == 0.0
    checker = np.indices((64, 64)).sum(0) % 2 * 255  # fine texture: vanishes after 4x4 averaging
    grey = np.full((64, 64, 3), 127.5)
    assert goal_distance(np.repeat(checker[..., None], 3, -1).astype(np.uint8), grey.astype(np.uint8)) < 0.01
    batch = np.stack([black, white, black])[None]  # (1, 3, 64, 64, 3) against one goal
    np.testing.assert_allclose(goal_distance(batch, white), [[1.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match="64, 64, 3"):
        goal_distance(np.zeros((32, 32, 3)), black)


def test_uncertainty_aware_dynamics_scores_every_candidate_over_several_latent_draws(tmp_path, monkeypatch):
    """samples=S imagines E*K*S rows per step in one call; the distance is the draws' mean plus
    spread_weight times their std (same latent draws for the same planner seed)."""
    model = load_model(make_tiny_checkpoint(tmp_path / "tiny"))
    refs = SimReferences(size=2, length=8)
    envs = [PushWorldGoalEnv(references=refs) for _ in range(2)]
    for i, env in enumerate(envs):
        env.reset(seed=0, options={"index": i})
    ctx = plan_context(envs)
    actions = quantise_action(np.random.default_rng(1).uniform(*action_bounds(), size=(2, 4, 3, 4)))
    positions = np.broadcast_to(ctx.positions[:, None, None], (2, 4, 3, 3)).copy()
    calls = []
    step = model.step
    monkeypatch.setattr(model, "step", lambda state, x, cond, **kw: calls.append(x.shape[0]) or step(state, x, cond, **kw))
    plain = ModelDynamics(WorldModel(model), samples=3, spread_weight=0.0).imagine(ctx, actions, positions,
                                                                                   np.random.default_rng(0))
    assert calls[-3:] == [2 * 4 * 3] * 3  # one call per imagined step for all envs, candidates and draws
    spread = ModelDynamics(WorldModel(model), samples=3, spread_weight=2.0).imagine(ctx, actions, positions,
                                                                                    np.random.default_rng(0))
    assert plain.shape == spread.shape == (2, 4, 3)
    assert (spread >= plain - 1e-12).all() and (spread > plain).any()
    with pytest.raises(ValueError, match="samples"):
        ModelDynamics(WorldModel(model), samples=0)


def test_cem_config_is_validated():
    with pytest.raises(ValueError, match="elites"):
        CEMConfig(population=4, elites=4)
    with pytest.raises(ValueError, match="horizon"):
        CEMConfig(horizon=0)


def test_learned_dynamics_imagines_every_candidate_of_every_env_in_one_call_per_step(tmp_path, monkeypatch):
    model = load_model(make_tiny_checkpoint(tmp_path / "tiny"))
    refs = SimReferences(size=3, length=8)
    envs = [PushWorldGoalEnv(references=refs) for _ in range(3)]
    for i, env in enumerate(envs):
        env.reset(seed=0, options={"index": i})
    envs[0].step(np.array([0.03, 0.0, 0, 1]))  # histories of different lengths are refused
    with pytest.raises(ValueError, match="one length"):
        ModelDynamics(WorldModel(model)).imagine(plan_context(envs), np.zeros((3, 4, 2, 4)), np.zeros((3, 4, 2, 3)),
                                                 np.random.default_rng(0))
    for env in envs[1:]:
        env.step(np.array([0.03, 0.0, 0, 1]))
    calls = []
    step = model.step
    monkeypatch.setattr(model, "step", lambda state, x, cond, **kw: calls.append((x.shape[0], kw.get("x_next") is None))
                        or step(state, x, cond, **kw))
    cfg = CEMConfig(horizon=3, population=5, elites=2, iterations=2)
    planner = CEMPlanner(ModelDynamics(WorldModel(model)), cfg, seed=0)
    actions = planner.plan(plan_context(envs))
    imagined = [n for n, prior in calls if prior]
    assert imagined == [3 * 5] * (cfg.horizon * cfg.iterations)  # E * K rows, one call per imagined step
    low, high = action_bounds()
    assert actions.shape == (3, 4) and (actions >= low).all() and (actions <= high).all()
    np.testing.assert_array_equal(actions[:, 2:], np.round(actions[:, 2:]))
    assert planner.best_costs.shape == (2, 3) and np.isfinite(planner.best_costs).all()


def test_cem_with_the_true_world_beats_random_actions_in_the_true_world():
    """Seeded: oracle CEM ends closer to the goal than random actions on every episode, and each
    CEM iteration's best cost never exceeds the previous one (the elites are carried over)."""
    refs = SimReferences(size=3, length=6)
    envs = [PushWorldGoalEnv(references=refs) for _ in range(3)]
    planner = CEMPlanner(SimDynamics(), CEMConfig(horizon=2, population=8, elites=2, iterations=2), seed=0)
    costs = []

    class Recording(PlannerPolicy):
        def __call__(self, envs_, obs):
            out = super().__call__(envs_, obs)
            costs.append(planner.best_costs)
            return out

    cem = evaluate_goal_policy(envs, Recording(planner), [0, 1, 2])
    rnd = evaluate_goal_policy(envs, RandomPolicy(0), [0, 1, 2])
    for c, r in zip(cem.episodes, rnd.episodes):
        assert c["goal_distance"] < r["goal_distance"], (c, r)
    assert cem.summary()["goal_distance"] < 0.8 * rnd.summary()["goal_distance"]
    for best in costs:
        assert (np.diff(best, axis=0) <= 1e-12).all()
    assert any((np.diff(best, axis=0) < 0).any() for best in costs)  # the refits do find better sequences


def test_sim_dynamics_needs_the_true_worlds():
    env = PushWorldGoalEnv(references=SimReferences(size=1, length=4))
    env.reset(seed=0)
    ctx = plan_context([env])
    ctx.worlds = None
    with pytest.raises(ValueError, match="worlds"):
        SimDynamics().imagine(ctx, np.zeros((1, 2, 1, 4)), np.zeros((1, 2, 1, 3)), np.random.default_rng(0))
