"""Goal-reaching by model-predictive control: the cross-entropy method over action sequences.

Visual-foresight style: at every step the planner samples K candidate sequences of the 4-dim action
``[dx, dy, grip, z command]`` for each of E envs, imagines their frames with a dynamics model, scores
them by the image distance to the goal frame, refits a Gaussian to the elites, and executes the
first action of the best mean. Positions are never planned: they follow from the actions through
the pushing world's own arm kinematics (`bair_world.sim.arm_step`), so a plan means the same thing
in the learned world and in the true one.

Two dynamics models share one interface:

* `ModelDynamics`: the learned SVG model via `WorldModel`. The observed history of every env is fed
  as context (posterior on the real frames), the recurrent state is cloned K times, and each
  imagined time step is ONE batched model call for all E*K candidates.
* `SimDynamics`: the true pushing world (copies of the env's `PushWorld`): an oracle upper bound.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from bair_world.data.batch import IMAGE_SIZE, frames_to_float, frames_to_uint8
from bair_world.sim import PushWorld, SimConfig, action_bounds, arm_step, quantise_action
from bair_world.metrics import goal_distance
from bair_world.world_model import WorldModel

@dataclass
class PlanContext:
    """What the planner knows about E envs at the current step (all in raw BAIR units).

    Attributes:
        frames: E arrays uint8 (t+1, 64, 64, 3): every frame observed so far (context included).
        conds: E arrays float32 (t, 7): the conds of the transitions so far (cond_i drives x_i -> x_{i+1}).
        positions: float64 (E, 3) current end-effector positions.
        goals: uint8 (E, 64, 64, 3) goal frames.
        steps_left: (E,) int, steps before the episode truncates (caps the horizon).
        worlds: the envs' true `PushWorld`s (only `SimDynamics` reads them; None otherwise).
    """

    frames: list[np.ndarray]
    conds: list[np.ndarray]
    positions: np.ndarray
    goals: np.ndarray
    steps_left: np.ndarray
    worlds: list[PushWorld] | None = None

    @property
    def num_envs(self) -> int:
        return len(self.frames)


class Dynamics(Protocol):
    """Imagines candidate action sequences and returns their per-step goal distances."""

    def imagine(self, ctx: PlanContext, actions: np.ndarray, positions: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
        """actions (E, K, H, 4) quantised, positions (E, K, H, 3) the cond positions -> (E, K, H) distances."""


class ModelDynamics:
    """The learned world model as the planner's dynamics (one batched call per imagined step).

    Uncertainty-aware option: with ``samples`` S > 1 every candidate is imagined under S latent
    draws and its distance at each step is ``mean + spread_weight * std`` over the draws, so a plan
    that only looks good in some futures (or in a blurred average of them) is penalised.

    Args:
        core: a `WorldModel` (its model is used; its state is overwritten by every `imagine`).
        samples: latent draws per candidate (1 = the plain planner).
        spread_weight: weight of the draws' standard deviation in the distance (0 = their mean only).
    """

    def __init__(self, core: WorldModel, samples: int = 1, spread_weight: float = 0.0):
        if samples < 1 or spread_weight < 0:
            raise ValueError(f"ModelDynamics needs samples >= 1 and spread_weight >= 0, got {samples}, {spread_weight}")
        self.core = core
        self.samples = samples
        self.spread_weight = spread_weight

    def imagine(self, ctx: PlanContext, actions: np.ndarray, positions: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
        e, k, h = actions.shape[:3]
        lengths = {len(f) for f in ctx.frames}
        if len(lengths) != 1:
            raise ValueError(f"ModelDynamics.imagine needs histories of one length, got {sorted(lengths)}")
        device = self.core.device
        gen = torch.Generator(device="cpu").manual_seed(int(rng.integers(2**63 - 1)))
        hist = frames_to_float(np.stack(ctx.frames))  # E x (t+1, 64, 64, 3) uint8 -> (E, t+1, 3, 64, 64)
        conds = torch.from_numpy(np.stack(ctx.conds).astype(np.float32)).reshape(e, hist.shape[1] - 1, -1)  # (E, t, 7)
        self.core.reset(hist, conds, gen)  # posterior on every observed frame
        s = self.samples
        # (E*K*S,): row (e*K + j)*S + d is latent draw d of candidate j of env e
        clone = torch.arange(e, device=device).repeat_interleave(k * s)
        self.core.state = self.core.state.index(clone)
        self.core.last_frame = self.core.last_frame[clone]
        # (E, K, H, 4) + (E, K, H, 3) -> (E, K, H, 7) -> (E*K, H, 7) -> (E*K*S, H, 7)
        cand = torch.from_numpy(np.concatenate([actions, positions], -1).astype(np.float32)).reshape(e * k, h, -1)
        cand = cand.repeat_interleave(s, 0)
        goals = ctx.goals[:, None, None]  # (E, 1, 1, 64, 64, 3) against (E, K, S, 64, 64, 3)
        dist = np.empty((e, k, s, h))
        for step in range(h):
            pred = self.core.step(cand[:, step], gen)  # (E*K*S, 3, 64, 64)
            frames = frames_to_uint8(pred).reshape(e, k, s, IMAGE_SIZE, IMAGE_SIZE, 3)  # (E*K*S, ...) -> (E, K, S, ...)
            dist[:, :, :, step] = goal_distance(frames, goals)
        return dist.mean(2) + self.spread_weight * dist.std(2)  # (E, K, S, H) -> (E, K, H)


class SimDynamics:
    """The true pushing world as the planner's dynamics: every candidate runs in a copy of the env's world."""

    def imagine(self, ctx: PlanContext, actions: np.ndarray, positions: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
        if ctx.worlds is None:
            raise ValueError("SimDynamics needs PlanContext.worlds (plan in PushWorldGoal-v0)")
        e, k, h = actions.shape[:3]
        dist = np.empty((e, k, h))
        for i, world in enumerate(ctx.worlds):
            for j in range(k):
                w = copy.deepcopy(world)
                frames = np.stack([w.step(actions[i, j, s], positions[i, j, s]) for s in range(h)])
                dist[i, j] = goal_distance(frames, ctx.goals[i])
        return dist


@dataclass(frozen=True)
class CEMConfig:
    """Cross-entropy method settings."""

    horizon: int = 5
    """Imagined steps per candidate (capped by the steps left in the episode)."""
    population: int = 48
    """Candidate sequences K per env and iteration (the previous elites included)."""
    elites: int = 6
    """Best candidates the Gaussian is refitted to."""
    iterations: int = 3
    """Refits per planning step."""
    init_std: tuple[float, float, float, float] = (0.05, 0.05, 1.5, 1.0)
    """Initial standard deviation of [dx, dy, grip, z command] (BAIR units)."""
    min_std: float = 0.005
    """Floor of the standard deviation (relative to each column's range), against early collapse."""
    warm_start: bool = True
    """Start the next step's mean from this plan shifted by one step."""
    final_weight: float = 1.0
    """Cost = mean distance over the horizon + final_weight * distance at its last step."""

    def __post_init__(self):
        if self.horizon < 1 or self.iterations < 1 or not 1 <= self.elites < self.population:
            raise ValueError(f"CEMConfig needs horizon >= 1, iterations >= 1, 1 <= elites < population; got {self}")


@dataclass
class CEMPlanner:
    """Plans the next 4-dim action of E envs with the cross-entropy method.

    Args:
        dynamics: `ModelDynamics` (learned world) or `SimDynamics` (true world, oracle).
        config: CEM settings.
        seed: seeds the candidate sampling and the dynamics' latent noise.
        sim_config: the world whose kinematics and action limits positions and actions obey.

    After `plan`, ``best_costs`` (iterations, E) holds the best candidate cost of each iteration
    and ``elite_costs`` (iterations, E) the elites' mean cost.
    """

    dynamics: Dynamics
    config: CEMConfig = CEMConfig()
    seed: int | None = 0
    sim_config: SimConfig = SimConfig()
    best_costs: np.ndarray = field(init=False, default=None)
    elite_costs: np.ndarray = field(init=False, default=None)

    def __post_init__(self):
        self.rng = np.random.default_rng(self.seed)
        self.low, self.high = (b.astype(np.float64) for b in action_bounds(self.sim_config))
        self._mean: np.ndarray | None = None  # (E, H, 4) warm start

    def reset(self) -> None:
        """Forget the warm start (call at the start of new episodes)."""
        self._mean = None

    def _initial_mean(self, e: int, h: int) -> np.ndarray:
        mean = np.zeros((e, h, 4))
        mean[..., 2] = (self.low[2] + self.high[2]) / 2
        mean[..., 3] = 0.0  # hold height
        if self.config.warm_start and self._mean is not None and self._mean.shape[0] == e:
            prev = self._mean[:, 1:h + 1]
            mean[:, :prev.shape[1]] = prev
        return mean

    def plan(self, ctx: PlanContext) -> np.ndarray:
        """The next action (E, 4) of every env in ``ctx`` (float32, quantised, within the action box)."""
        cfg, e = self.config, ctx.num_envs
        h = int(max(1, min(cfg.horizon, int(np.max(ctx.steps_left)))))
        k, n_elite = cfg.population, cfg.elites
        span = self.high - self.low
        mean = self._initial_mean(e, h)
        std = np.broadcast_to(np.asarray(cfg.init_std, np.float64), (e, h, 4)).copy()
        elites = None  # (E, n_elite, H, 4)
        best, elite_mean = np.empty((cfg.iterations, e)), np.empty((cfg.iterations, e))
        # weight of each step in the cost: beyond an env's last step nothing counts
        live = (np.arange(h)[None] < np.maximum(ctx.steps_left, 1)[:, None]).astype(np.float64)  # (E, H)
        last = np.maximum(np.minimum(ctx.steps_left, h), 1) - 1  # (E,) index of each env's last counted step
        for it in range(cfg.iterations):
            cand = mean[:, None] + std[:, None] * self.rng.standard_normal((e, k, h, 4))  # (E, K, H, 4)
            cand[:, 0] = mean  # the mean itself is always a candidate
            if elites is not None:
                cand[:, 1:1 + n_elite] = elites
            cand = quantise_action(np.clip(cand, self.low, self.high), self.sim_config)
            positions = self._positions(ctx.positions, cand)  # (E, K, H, 3)
            dist = self.dynamics.imagine(ctx, cand, positions, self.rng)  # (E, K, H)
            cost = (dist * live[:, None]).sum(-1) / live.sum(-1)[:, None]
            cost = cost + cfg.final_weight * np.take_along_axis(dist, last[:, None, None], -1)[..., 0]  # (E, K)
            order = np.argsort(cost, axis=1, kind="stable")[:, :n_elite]  # (E, n_elite)
            elites = np.take_along_axis(cand, order[:, :, None, None], axis=1)  # (E, n_elite, H, 4)
            best[it] = np.take_along_axis(cost, order[:, :1], 1)[:, 0]
            elite_mean[it] = np.take_along_axis(cost, order, 1).mean(1)
            mean = elites.mean(1)
            std = np.maximum(elites.std(1), cfg.min_std * span)
        self.best_costs, self.elite_costs = best, elite_mean
        self._mean = elites[:, 0]  # warm start from the best sequence found
        return elites[:, 0, 0].astype(np.float32)

    def _positions(self, start: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """(E, 3) start positions and (E, K, H, 4) actions -> (E, K, H, 3) the position at each step."""
        e, k, h = actions.shape[:3]
        pos = np.broadcast_to(np.asarray(start, np.float64)[:, None], (e, k, 3)).copy()
        out = np.empty((e, k, h, 3))
        for step in range(h):
            out[:, :, step] = pos
            pos = arm_step(pos, actions[:, :, step], config=self.sim_config)
        return out
