"""Issue 30: the planner's costs (pixel, readout, mix): zero at the goal, larger away, exact on hand-made
states; batched planning equals unbatched with the readout cost; the timing split; the goal envs' costs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from helpers import make_tiny_checkpoint
from bair_world.checkpoint import load_model, read_config
from bair_world.envs.goal import BairWorldGoalEnv
from bair_world.envs.goal_eval import plan_context
from bair_world.push_goals import push_goals
from bair_world.envs.references import SimReferences
from bair_world.plan_costs import MixedCost, PixelCost, ReadoutCost, make_cost
from bair_world.planning import CEMConfig, CEMPlanner, ModelDynamics, PlanContext
from bair_world.readout import State, StateReadout, config_for, save_readout
from bair_world.world_model import WorldModel

REFS = SimReferences(size=40, length=12)


class FeaturesAreStates(nn.Module):
    """A hand-made readout: the first 'skip' (N, 18) IS the 9 slots' (x, y); every slot present."""

    def forward(self, skips, kind="encoded"):
        objects = skips[0].reshape(len(skips[0]), 9, 2)
        return State(objects, torch.full(objects.shape[:-1], 10.0), torch.zeros(len(objects), 3))


def _frame(v: int) -> np.ndarray:
    return np.full((64, 64, 3), v, np.uint8)


def _encoder(states: dict[int, torch.Tensor]):
    """A hand-made encoder: a frame of grey level v has the 'skips' [states[v]]."""
    return lambda frames: [torch.stack([states[int(f[0, 0, 0])] for f in frames])]  # noqa: E731


def _state(moves: dict[int, tuple[float, float]]) -> torch.Tensor:
    base = torch.stack([torch.full((9,), 0.6), torch.linspace(-0.2, 0.2, 9)], -1)  # (9, 2)
    for slot, xy in moves.items():
        base[slot] = torch.tensor(xy)
    return base.reshape(18)


def _ctx(e: int = 2) -> PlanContext:
    black, white = np.zeros((64, 64, 3), np.uint8), np.full((64, 64, 3), 255, np.uint8)
    return PlanContext([np.stack([black, black])] * e, [np.zeros((1, 7), np.float32)] * e, np.zeros((e, 3)),
                       np.stack([white] * e), np.full(e, 5))


def test_pixel_cost_zero_at_the_goal_larger_away_exact():
    ctx, cost = _ctx(), make_cost("pixel")
    white, grey, black = (np.full((64, 64, 3), v, np.uint8) for v in (255, 153, 0))
    frames = np.stack([np.stack([white, grey, black])] * 2)  # (E=2, K=3, 64, 64, 3)
    np.testing.assert_allclose(cost(ctx, frames=frames), [[0.0, 0.4, 1.0]] * 2, atol=1e-6)
    with pytest.raises(ValueError, match="frames"):
        cost(ctx, codes=torch.zeros(2, 3, 18))


def test_readout_cost_finds_the_goal_object_and_is_exact_in_metres():
    ctx = _ctx()
    start, goal = _state({}), _state({3: (0.70, -0.05)})  # slot 3 moves 10 cm in x
    imagined = [goal, _state({3: (0.73, -0.01)}), start, _state({3: (0.70, -0.05), 5: (0.1, 0.1)})]
    cost = ReadoutCost(FeaturesAreStates())
    cost.begin(ctx, _encoder({0: start, 255: goal} | {10 + i: s for i, s in enumerate(imagined)}))
    np.testing.assert_array_equal(cost.slots, [3, 3])
    torch.testing.assert_close(cost.goal_xy, torch.tensor([[0.70, -0.05]] * 2))
    # imagined frames: at the goal, 5 cm off, 10 cm, another object moved
    frames = np.stack([np.stack([_frame(10 + i) for i in range(4)])] * 2)  # (E=2, K=4, 64, 64, 3)
    np.testing.assert_allclose(cost(ctx, frames=frames), [[0.0, 0.05, 0.10, 0.0]] * 2, atol=1e-6)
    # hand-set goals, extra axes (E, K, S draws)
    cost.set_goal([0, 8], [[0.6, -0.2], [0.0, 0.0]])
    objs = torch.zeros(2, 1, 1, 9, 2)
    objs[0, 0, 0, 0] = torch.tensor([0.6, -0.17])
    np.testing.assert_allclose(cost.distance(objs), [[[0.03]], [[0.0]]], atol=1e-6)
    with pytest.raises(ValueError, match="frames"):
        cost(ctx, codes=torch.zeros(2, 1, 18))


def test_mixed_cost_is_pixel_plus_weighted_readout():
    ctx = _ctx(1)
    start, goal = _state({}), _state({2: (0.6, 0.0)})  # slot 2 moves 10 cm in y
    cost = make_cost("mix", FeaturesAreStates(), weight=2.0)
    assert isinstance(cost, MixedCost) and cost.needs_frames and not cost.needs_codes
    cost.begin(ctx, _encoder({0: start, 255: goal}))
    frames = np.stack([_frame(255), _frame(0)])[None]  # (1, 2, 64, 64, 3)
    np.testing.assert_allclose(cost(ctx, frames=frames), [[0.0, 1.0 + 2.0 * 0.1]], atol=1e-6)
    with pytest.raises(ValueError, match="readout"):
        make_cost("readout")
    with pytest.raises(ValueError, match="cost must be one of"):
        make_cost("dino")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    ckpt = make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")
    model = load_model(ckpt)
    torch.manual_seed(0)
    readout = StateReadout(config_for(WorldModel(model).encode_skips(torch.zeros(1, 3, 64, 64)), hidden=8))
    save_readout(ckpt, readout, {"model_sha256": read_config(ckpt).get("model_sha256")})
    return ckpt, model, readout


@pytest.fixture(scope="module")
def goal_envs(tiny):
    goals = push_goals(2, REFS, start=0)
    return [BairWorldGoalEnv(checkpoint=tiny[0], references=REFS, device="cpu", task="push", push_goals=goals)
            for _ in range(2)]


def _envs(goal_envs, n):
    for i, env in enumerate(goal_envs[:n]):
        env.reset(seed=0, options={"index": i})
    return goal_envs[:n]


def test_readout_planning_together_equals_alone(tiny, goal_envs):
    ckpt, model, readout = tiny
    envs = _envs(goal_envs, 2)
    cfg = CEMConfig(horizon=2, population=4, elites=2, iterations=2, repeat=2, smoothing=0.5, mean_weight=0.0)

    def planner():
        return CEMPlanner(ModelDynamics(WorldModel(model), cost=make_cost("readout", readout)), cfg, seed=3)

    both = planner()
    together = both.plan_sequence(plan_context(envs))
    alone = np.concatenate([planner().plan_sequence(plan_context([e])) for e in envs])
    np.testing.assert_array_equal(together, alone)
    t = both.dynamics.timings
    assert {"reset", "step", "cost"} <= set(t) and all(v >= 0 for v in t.values())
    assert both.timings["cem"] > 0 and both.timings["plan"] >= both.timings["dynamics"] > 0


def test_profiled_pixel_planning_plans_the_same_sequence(tiny, goal_envs):
    ckpt, model, _ = tiny
    envs = _envs(goal_envs, 1)
    cfg = CEMConfig(horizon=2, population=4, elites=2, iterations=1)
    plain = CEMPlanner(ModelDynamics(WorldModel(model)), cfg, seed=1).plan_sequence(plan_context(envs))
    dyn = ModelDynamics(WorldModel(model), profile=True)
    profiled = CEMPlanner(dyn, cfg, seed=1).plan_sequence(plan_context(envs))
    np.testing.assert_array_equal(plain, profiled)
    assert dyn.timings["decoder"] > 0 and "step" not in dyn.timings


def test_goal_env_exposes_the_planner_costs(tiny, goal_envs):
    ckpt, model, _ = tiny
    env = _envs(goal_envs, 1)[0]
    pixel = env.plan_cost("pixel")
    assert pixel(env.goal_frame) == 0.0
    obs = env.history[0][-1]
    assert pixel(obs) == pytest.approx(env.task.image_distance(obs, env.goal)) and pixel(obs) > 0
    readout = env.plan_cost("readout")  # the readout saved with the checkpoint
    frames = np.stack([obs] * 3)
    assert readout(frames=frames).shape == (3,)
    mix = env.plan_cost("mix", weight=0.5)
    np.testing.assert_allclose(mix(frames=frames), pixel(frames) + 0.5 * readout(frames=frames), rtol=1e-6)
    assert isinstance(make_cost("pixel"), PixelCost)
