"""Imagination fast enough (issue 30, item 3): warm starts and elite reuse between replans (iCEM), the
population decay, the context fed once per planning call, batched = unbatched with them, and the bf16
path against float32 on a tiny model."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from helpers import make_tiny_checkpoint
from bair_world.checkpoint import load_model, resolve_checkpoint
from bair_world.envs.goal_eval import plan_context
from bair_world.envs.push_world_env import PushWorldGoalEnv
from bair_world.envs.references import SimReferences
from bair_world.goal_tasks import make_task
from bair_world.planning import CEMConfig, CEMPlanner, ModelDynamics, action_bounds
from bair_world.sim import quantise_action
from bair_world.world_model import WorldModel

REFS = SimReferences(size=3, length=10)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_model(make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny"))


def _envs(n: int) -> list[PushWorldGoalEnv]:
    envs = [PushWorldGoalEnv(references=REFS) for _ in range(n)]
    for i, env in enumerate(envs):
        env.reset(seed=0, options={"index": i})
    return envs


class Recording(ModelDynamics):
    """ModelDynamics that keeps every candidate batch it imagines."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[np.ndarray] = []

    def imagine(self, ctx, actions, positions, rng, seeds=None, steps=None):
        self.calls.append(actions.copy())
        return super().imagine(ctx, actions, positions, rng, seeds=seeds, steps=steps)


def test_new_options_are_validated_and_the_population_decays():
    for bad in ({"keep_elites": -0.1}, {"keep_elites": 1.5}, {"population_decay": 0.5}):
        with pytest.raises(ValueError, match="keep_elites|population_decay"):
            CEMConfig(population=20, elites=4, **bad)
    cfg = CEMConfig(population=40, elites=4, iterations=4, population_decay=2.0)
    assert [cfg.population_at(i) for i in range(4)] == [40, 20, 10, 9]  # floor 2 * elites + 1
    assert [CEMConfig(population=40, elites=4).population_at(i) for i in range(3)] == [40, 40, 40]


def test_decayed_population_is_what_the_model_imagines(model):
    cfg = CEMConfig(horizon=2, population=12, elites=2, iterations=3, population_decay=2.0)
    dyn = Recording(WorldModel(model))
    planner = CEMPlanner(dyn, cfg, seed=0)
    planner.plan_sequence(plan_context(_envs(2)))
    assert [c.shape[:2] for c in dyn.calls] == [(2, 12), (2, 6), (2, 5)]
    assert planner.frames == 2 * (12 + 6 + 5) * 2  # E x candidates x horizon, summed over the iterations


def test_warm_start_mean_and_kept_elites_are_the_previous_plan_shifted(model):
    """The second call's first mean is the first call's best sequence shifted by the steps executed since
    (one entry per held row), and its first candidates after the mean are the shifted previous elites
    (their tail past the old plan freshly sampled, as iCEM does); a cold start keeps nothing."""
    cfg = CEMConfig(horizon=6, population=10, elites=4, iterations=2, repeat=2, keep_elites=0.5)
    dyn = Recording(WorldModel(model))
    planner = CEMPlanner(dyn, cfg, seed=0)
    envs = _envs(1)
    first = planner.plan_sequence(plan_context(envs))[0]  # (H, 4)
    cold = dyn.calls[0][0]  # (K, H, 4): no previous plan, so nothing kept: candidates 1, 2 are sampled
    assert not np.allclose(cold[1], cold[0]) and not np.allclose(cold[2], cold[0])
    elites = planner._last[0][2]  # (n_elite, H, 4), held steps
    for action in first[:2]:  # execute two steps (one held row)
        envs[0].step(action)
    dyn.calls.clear()
    planner.plan_sequence(plan_context(envs))
    np.testing.assert_array_equal(planner.initial_mean[0, :2], first[2::2])  # rows 1, 2 of the old plan
    default = planner.initial_mean[0, 2]  # past the old plan's end: the cold mean (grip mid-range, still)
    np.testing.assert_array_equal(default, [0, 0, (planner.low[2] + planner.high[2]) / 2, 0])
    cand = dyn.calls[0][0]  # (K, H, 4) of the first iteration
    close = lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6)  # noqa: E731  (float32 plans, float64 means)
    close(cand[0, ::2], planner.initial_mean[0])  # the mean is candidate 0
    kept = cand[1:3]  # keep_elites 0.5 of 4 elites: the two best, shifted, then held 2 steps
    close(kept[:, :4], elites[:2, 2:])
    assert not np.allclose(kept[:, 4:], default)  # past the old plan's end: freshly sampled
    planner.reset()
    planner.plan_sequence(plan_context(envs))
    np.testing.assert_array_equal(planner.initial_mean[0], np.broadcast_to(default, (3, 4)))  # forgotten


def test_without_warm_start_nothing_is_reused(model):
    cfg = CEMConfig(horizon=4, population=6, elites=2, iterations=1, repeat=2, warm_start=False, keep_elites=1.0)
    planner = CEMPlanner(ModelDynamics(WorldModel(model)), cfg, seed=0)
    envs = _envs(1)
    planner.plan_sequence(plan_context(envs))
    envs[0].step(planner.sequence[0, 0])
    planner.plan_sequence(plan_context(envs))
    assert (planner.initial_mean[0, :, :2] == 0).all()


def test_context_is_fed_once_per_planning_call(model, monkeypatch):
    """The posterior steps over the history run in the first CEM iteration only; later iterations start
    from the saved state and imagine the same frames a fresh context feed with that draw gives."""
    calls = []
    step = model.step
    monkeypatch.setattr(model, "step", lambda state, x, cond, **kw: calls.append(kw.get("x_next") is not None)
                        or step(state, x, cond, **kw))
    envs = _envs(2)
    envs[0].step(np.array([0.03, 0.0, 0, 1]))
    envs[1].step(np.array([0.03, 0.0, 0, 1]))
    ctx = plan_context(envs)  # 3 observed frames: 2 posterior steps per feed
    cfg = CEMConfig(horizon=2, population=4, elites=1, iterations=3)
    dyn = ModelDynamics(WorldModel(model))
    CEMPlanner(dyn, cfg, seed=0).plan_sequence(ctx)
    assert sum(calls) == 2  # one feed for 3 iterations
    CEMPlanner(dyn, cfg, seed=0).plan_sequence(plan_context(envs))  # a new context is fed again
    assert sum(calls) == 4


def test_batched_equals_unbatched_with_warm_starts_kept_elites_and_decay(model):
    """Two episodes planned together over two replans give what each gets alone (per-env seeding and
    per-episode warm starts)."""
    cfg = CEMConfig(horizon=4, population=8, elites=2, iterations=2, repeat=2, smoothing=0.5, mean_weight=0.0,
                    keep_elites=0.5, population_decay=1.5)

    def run(groups):
        out = []
        for group in groups:
            planner = CEMPlanner(ModelDynamics(WorldModel(model)), cfg, seed=3)
            envs = _envs(2)
            envs = [envs[i] for i in group]
            seqs = [planner.plan_sequence(plan_context(envs))]
            for env, seq in zip(envs, seqs[0]):
                env.step(seq[0])
                env.step(seq[1])
            seqs.append(planner.plan_sequence(plan_context(envs)))
            out.append(np.stack(seqs, 1))  # (E, 2 calls, H, 4)
        return np.concatenate(out)

    np.testing.assert_array_equal(run([[0, 1]]), run([[0], [1]]))


def test_bfloat16_imagines_the_float32_costs_within_tolerance(model):
    """bf16 (autocast) against float32 on the same candidates and latent draws: costs within 0.002 of
    image distance (bf16 keeps 8 bits of mantissa; measured 4e-4). The tiny random-weight model's
    plans are not compared: its candidates' costs differ by ~1e-6, far below that rounding, so its
    CEM ranking is rounding noise (the bundled model's plans are compared below)."""
    ctx = plan_context(_envs(2))
    rng = np.random.default_rng(0)
    actions = quantise_action(rng.uniform(*action_bounds(), size=(2, 6, 3, 4)))
    positions = np.broadcast_to(ctx.positions[:, None, None], (2, 6, 3, 3)).copy()
    costs = {p: ModelDynamics(WorldModel(model, precision=p)).imagine(ctx, actions, positions, np.random.default_rng(1))
             for p in ("float32", "bfloat16")}
    assert np.abs(costs["float32"] - costs["bfloat16"]).max() < 0.002


def test_bfloat16_plans_what_float32_plans_with_the_bundled_model():
    """A trained model separates its candidates by more than bf16's rounding: the same plan (2 pushing
    goals, 2 refits; bf16 moved the best costs by ~1e-4 of image distance)."""
    model = load_model(resolve_checkpoint(None))
    refs, task = SimReferences(), make_task("push")
    envs = [PushWorldGoalEnv(references=refs, task=task, num_goals=2) for _ in range(2)]
    for i, env in enumerate(envs):
        env.reset(seed=0, options={"index": i})
    ctx = plan_context(envs)
    cfg = CEMConfig(horizon=4, population=8, elites=2, iterations=2, repeat=2, mean_weight=0.0)
    plans, best = {}, {}
    for p in ("float32", "bfloat16"):
        planner = CEMPlanner(ModelDynamics(WorldModel(copy.deepcopy(model), precision=p)), cfg, seed=0)
        plans[p], best[p] = planner.plan_sequence(ctx), planner.best_costs
    np.testing.assert_array_equal(plans["float32"], plans["bfloat16"])
    np.testing.assert_allclose(best["float32"], best["bfloat16"], atol=0.002)


def test_imagining_in_chunks_of_rows_gives_the_same_costs(model, monkeypatch):
    """max_rows splits the E*K*S rows into equal chunks, each through the whole horizon: same latent
    draws, same frames, same costs as one call for all rows; the model sees at most max_rows rows."""
    ctx = plan_context(_envs(2))
    rng = np.random.default_rng(0)
    actions = quantise_action(rng.uniform(*action_bounds(), size=(2, 5, 3, 4)))
    positions = np.broadcast_to(ctx.positions[:, None, None], (2, 5, 3, 3)).copy()
    whole = ModelDynamics(WorldModel(model), samples=2).imagine(ctx, actions, positions, np.random.default_rng(1))
    sizes = []
    step = model.step
    monkeypatch.setattr(model, "step", lambda state, x, cond, **kw: sizes.append(x.shape[0])
                        or step(state, x, cond, **kw))
    chunked = ModelDynamics(WorldModel(model), samples=2, max_rows=6).imagine(ctx, actions, positions,
                                                                             np.random.default_rng(1))
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-6)
    prior = sizes[1:]  # after the context feed (one posterior step of 2 rows)
    assert sizes[0] == 2 and prior == [5] * (4 * 3)  # 20 rows in 4 equal chunks of 5, 3 steps each
    with pytest.raises(ValueError, match="max_rows"):
        ModelDynamics(WorldModel(model), max_rows=0)
