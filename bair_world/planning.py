"""Goal reaching and pushing by model-predictive control: the cross-entropy method over action sequences.

Visual-foresight style (Ebert et al. 2018): at every planning step the planner samples K candidate
sequences of the 4-dim action ``[dx, dy, grip, z command]`` for each of E envs, as a few action
ROWS each held for ``repeat`` steps (as the data holds them) with noise correlated across rows
(smooth pushes rather than jitter), imagines their frames with a dynamics model, scores them by an
image cost to the goal frame, refits a Gaussian to the elites (``iterations`` times) and returns the
best sequence; `PlannerPolicy` (`bair_world.envs.goal_eval`) executes its first ``replan_every``
steps, then plans again. Positions are never planned: they follow from the actions through the
pushing world's own arm kinematics (`bair_world.sim.arm_step`), so a plan means the same thing in
the learned world and in the true one.

The cost is chosen by name from one interface (`bair_world.plan_costs`: ``make_cost``): ``"pixel"``
(the default) is the goal task's image cost (`bair_world.goal_tasks.goal_cost`): the image distance
to the goal frame, or, when the goal carries a weight mask (`PlanContext.weights`, a pushing goal's
`bair_world.push_goals.goal_weights`), the distance weighted by where the start and the goal frames
differ with the arm's pixels discounted: a pushing goal is about a few object pixels, which the arm
would otherwise dominate. ``"readout"`` is the goal object's distance in metres, read from the model's imagined
frames by a trained state readout (`bair_world.readout`: the encoder's skips of each frame), and ``"mix"`` both.

Where the time goes: ``ModelDynamics.timings`` splits its seconds into the context feed, the
encoder, the predictor, the decoder and the cost; `CEMPlanner.timings` adds the CEM's own
sampling and refitting (``cem``), and ``CEMPlanner.frames`` counts the imagined candidate frames
(``benchmarks/bench_planning.py``; docs/benchmarks.md, "Planning: where the time goes": the decoder
is ~80 %). Replans reuse the previous plan (``warm_start``: its mean, shifted; iCEM's
``keep_elites``: some of its elites) and iCEM's ``population_decay`` shrinks later iterations.

Two dynamics models share one interface:

* `ModelDynamics`: the learned SVG model via `WorldModel`. The observed history of every env is fed
  as context (posterior on the real frames), the recurrent state is repeated K times
  (`WorldModel.repeat_rows`), and each imagined time step is ONE batched model call for all E*K
  candidates.
* `SimDynamics`: the true pushing world (copies of the env's `PushWorld`): an oracle upper bound.

Randomness is per env: env i's candidates and latent draws come from generators seeded by
``(planner seed, PlanContext.keys[i], its step)``, so planning E envs together gives what planning
each alone gives (up to float rounding of batched convolutions).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from bair_world.data.batch import IMAGE_SIZE, cond_of, frames_to_float, frames_to_uint8
from bair_world.goal_tasks import goal_cost
from bair_world.plan_costs import COSTS, MixedCost, PixelCost, PlanCost, ReadoutCost, make_cost  # noqa: F401
from bair_world.sim import PushWorld, SimConfig, action_bounds, arm_step, quantise_action
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
        weights: float32 (E, 64, 64) cost masks (`bair_world.push_goals.goal_weights`), or None for the
            plain `bair_world.metrics.goal_distance`.
        keys: (E,) ints naming the episodes (seed their randomness; None: the env's slot 0..E-1).
    """

    frames: list[np.ndarray]
    conds: list[np.ndarray]
    positions: np.ndarray
    goals: np.ndarray
    steps_left: np.ndarray
    worlds: list[PushWorld] | None = None
    weights: np.ndarray | None = None
    keys: np.ndarray | None = None

    @property
    def num_envs(self) -> int:
        return len(self.frames)

    def distance(self, frames: np.ndarray) -> np.ndarray:
        """The goal task's image cost (`bair_world.goal_tasks.goal_cost`) of frames uint8 (E, ..., 64, 64, 3)
        against each env's goal -> (E, ...)."""
        extra = frames.ndim - 4  # axes between E and the image
        lead = lambda x: x.reshape(x.shape[0], *([1] * extra), *x.shape[1:])  # noqa: E731  (E, ...) -> (E, 1.., ...)
        return goal_cost(frames, lead(self.goals), None if self.weights is None else lead(self.weights))


def episode_seeds(seed: int | None, ctx: PlanContext) -> np.ndarray:
    """(E,) uint64-range ints: env i's seed for this planning step, from (seed, its key, its step)."""
    keys = np.arange(ctx.num_envs) if ctx.keys is None else np.asarray(ctx.keys)
    return np.array([np.random.default_rng([0 if seed is None else seed, int(k), len(f)]).integers(2**62)
                     for k, f in zip(keys, ctx.frames)], np.int64)


class Dynamics(Protocol):
    """Imagines candidate action sequences and returns their per-step costs."""

    seconds: float

    def imagine(self, ctx: PlanContext, actions: np.ndarray, positions: np.ndarray,
                rng: np.random.Generator, seeds: np.ndarray | None = None, steps=None) -> np.ndarray:
        """actions (E, K, H, 4) quantised, positions (E, K, H, 3) the cond positions -> (E, K, H) costs
        (NaN at steps not in ``steps``, None = all); ``seeds`` (E,) per-env noise seeds (None: from rng)."""


#: `ModelDynamics`' default rows per model call (bf16 on the 2-core EPYC: flat from ~100 to 400 rows, slower at 800).
MAX_ROWS = 256


def _steps(steps, h: int) -> list[int]:
    return list(range(h)) if steps is None else sorted(int(s) for s in steps)


class ModelDynamics:
    """The learned world model as the planner's dynamics (one batched call per imagined step).

    Uncertainty-aware option: with ``samples`` S > 1 every candidate is imagined under S latent
    draws and its distance at each step is ``mean + spread_weight * std`` over the draws, so a plan
    that only looks good in some futures (or in a blurred average of them) is penalised.

    Args:
        core: a `WorldModel` (its model is used; its state is overwritten by every `imagine`); make it
            with ``precision="bfloat16"`` on a CPU with AVX512-BF16 for ~2x the speed.
        samples: latent draws per candidate (1 = the plain planner).
        spread_weight: weight of the draws' standard deviation in the distance (0 = their mean only).
        cost: the cost (`bair_world.plan_costs`; default the pixel cost). One that needs no frames
            (``"readout"``) is scored on the predictor's codes and the last imagined step is not decoded.
        profile: split the model's time into encoder / predictor / decoder (``timings``); steps then
            run eagerly through `WorldModel.step_latent` (same frames) even for a compiled model.
        max_rows: rows (candidates x draws) per model call: more are imagined in equal chunks, each
            through the whole horizon (the same frames). Past a few hundred rows a step's activations
            leave the CPU's cache and every frame costs more (docs/benchmarks.md: 35 % more at 800 than 200).

    The observed history is fed once per `PlanContext` (the posterior draws of its first `imagine`):
    the CEM's later iterations on the same context start from the saved state.

    ``seconds`` accumulates the wall time spent in `imagine` (the model calls and their costs);
    ``timings`` its split: "reset" (context feed), "step" (model steps; with ``profile`` or a code
    cost: "encoder", "predictor", "decoder" instead), "cost".
    """

    def __init__(self, core: WorldModel, samples: int = 1, spread_weight: float = 0.0, cost: PlanCost | None = None,
                 profile: bool = False, max_rows: int = MAX_ROWS):
        if samples < 1 or spread_weight < 0 or max_rows < 1:
            raise ValueError(f"ModelDynamics needs samples >= 1, spread_weight >= 0 and max_rows >= 1, got {samples}, "
                             f"{spread_weight}, {max_rows}")
        self.max_rows = int(max_rows)
        self.core = core
        self.samples = samples
        self.spread_weight = spread_weight
        self.cost = PixelCost() if cost is None else cost
        self.profile = profile
        self.seconds = 0.0
        self.timings: dict[str, float] = {}
        # (context key, state, last frame) after the last context feed: the CEM's iterations on one
        # PlanContext feed its history once (the key holds the context itself, so its id is not reused)
        self._context: tuple | None = None

    def _encode(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (N, 64, 64, 3) -> the encoder's skips (the readout costs read goal and imagined frames with them)."""
        return self.core.encode_skips(frames_to_float(frames))  # (N, 64, 64, 3) -> (N, 3, 64, 64) -> [(N, C, H, W)]

    def _tick(self, name: str, start: float) -> float:
        now = time.perf_counter()
        self.timings[name] = self.timings.get(name, 0.0) + now - start
        return now

    def _model_step(self, cond: torch.Tensor, gens, last: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """One imagined step of every row -> (codes or None, frames or None)."""
        if not (self.profile or self.cost.needs_codes):
            t0 = time.perf_counter()
            frame = self.core.step(cond, gens)
            self._tick("step", t0)
            return None, frame
        decode = self.cost.needs_frames or not last
        return self.core.step_latent(cond, gens, decode=decode, timings=self.timings)

    def _rollouts(self, cand: torch.Tensor, gens: list, env_of: torch.Tensor, scored: set[int]) -> dict:
        """Imagine every row from its env's fed context, ``max_rows`` rows per model call (balanced chunks,
        each through the whole horizon) -> {scored step: (uint8 frame chunks, code chunks)} in row order.

        Args:
            cand: (N, H, 7) conds of the N = E*K*S rows; gens: their N generators; env_of: (N,) each row's env.
        """
        state, last = self.core.state, self.core.last_frame  # (E,) rows after the context feed
        n = len(env_of)
        size = -(-n // -(-n // self.max_rows))  # n rows in ceil(n / max_rows) chunks of equal size
        outs = {step: ([], []) for step in sorted(scored)}
        for a in range(0, n, size):
            rows = env_of[a:a + size]
            self.core.state, self.core.last_frame = state.index(rows), last[rows]  # (E,) -> (rows,)
            for step in range(max(scored) + 1):
                codes, pred = self._model_step(cand[a:a + size, step], gens[a:a + size], last=step == max(scored))
                if step in scored:  # codes (rows, g), pred (rows, 3, 64, 64)
                    t0 = time.perf_counter()
                    if pred is not None:
                        outs[step][0].append(frames_to_uint8(pred))  # (rows, 64, 64, 3)
                    if codes is not None:
                        outs[step][1].append(codes)
                    self._tick("cost", t0)
        return outs

    def imagine(self, ctx: PlanContext, actions: np.ndarray, positions: np.ndarray,
                rng: np.random.Generator, seeds: np.ndarray | None = None, steps=None) -> np.ndarray:
        start = time.perf_counter()
        e, k, h = actions.shape[:3]
        lengths = {len(f) for f in ctx.frames}
        if len(lengths) != 1:
            raise ValueError(f"ModelDynamics.imagine needs histories of one length, got {sorted(lengths)}")
        s = self.samples
        seeds = rng.integers(2**62, size=e) if seeds is None else np.asarray(seeds)
        # one generator per row, row (e*K + j)*S + d seeded by env e's seed: env e's draws do not
        # depend on the other envs planned with it
        gens = [torch.Generator(device="cpu").manual_seed(int(seeds[i]) + r) for i in range(e) for r in range(k * s)]
        key = (ctx, tuple(len(f) for f in ctx.frames))
        fed = self._context is not None and self._context[0][0] is ctx and self._context[0][1] == key[1]
        if fed:  # a later CEM iteration on the same context: its history is already fed
            self.core.state, self.core.last_frame = self._context[1:]
            self._tick("reset", start)
        else:
            hist = frames_to_float(np.stack(ctx.frames))  # E x (t+1, 64, 64, 3) uint8 -> (E, t+1, 3, 64, 64)
            conds = np.stack(ctx.conds).astype(np.float32)  # E x (t, 7) -> (E, t, 7)
            conds = torch.from_numpy(conds).reshape(e, hist.shape[1] - 1, -1)
            self.core.reset(hist, conds, [gens[i * k * s] for i in range(e)])  # posterior on every observed frame
            self._context = (key, self.core.state, self.core.last_frame)
            t0 = self._tick("reset", start)
            self.cost.begin(ctx, self._encode)
            self._tick("cost", t0)
        # (E, K, H, 4) + (E, K, H, 3) -> (E, K, H, 7) -> (E*K, H, 7) -> (E*K*S, H, 7)
        cand = torch.from_numpy(cond_of(actions, positions)).reshape(e * k, h, -1)
        cand = cand.repeat_interleave(s, 0)
        scored = set(_steps(steps, h))
        outs = self._rollouts(cand, gens, torch.arange(e).repeat_interleave(k * s), scored)
        dist = np.full((e, k, s, h), np.nan)
        t0 = time.perf_counter()
        for step, (frames, codes) in outs.items():
            frames = None if not frames else np.concatenate(frames).reshape(e, k, s, IMAGE_SIZE, IMAGE_SIZE, 3)
            codes = None if not codes else torch.cat(codes).reshape(e, k, s, -1)  # (E*K*S, g) -> (E, K, S, g)
            dist[:, :, :, step] = self.cost(ctx, frames=frames, codes=codes)
        self._tick("cost", t0)
        self.seconds += time.perf_counter() - start
        return dist.mean(2) + self.spread_weight * dist.std(2)  # (E, K, S, H) -> (E, K, H)


class SimDynamics:
    """The true pushing world as the planner's dynamics: every candidate runs in a copy of the env's world.

    Frames are rendered only at the scored steps (physics runs every step). Each candidate starts
    from a snapshot of the env's world (`PushWorld.snapshot`/`restore`, 100x cheaper than a deep
    copy; the solver's warm-start cache is the one thing not restored). ``seconds`` accumulates the
    wall time spent in `imagine`.
    """

    def __init__(self, cost: PlanCost | None = None):
        self.cost = PixelCost() if cost is None else cost
        if self.cost.needs_codes:
            raise ValueError(f"SimDynamics renders frames and has no model codes: the {self.cost.name!r} cost "
                             "needs ModelDynamics")
        self.seconds = 0.0

    def imagine(self, ctx: PlanContext, actions: np.ndarray, positions: np.ndarray,
                rng: np.random.Generator, seeds: np.ndarray | None = None, steps=None) -> np.ndarray:
        if ctx.worlds is None:
            raise ValueError("SimDynamics needs PlanContext.worlds (plan in PushWorldGoal-v0)")
        start = time.perf_counter()
        e, k, h = actions.shape[:3]
        scored = _steps(steps, h)
        frames = np.empty((e, k, len(scored), IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
        for i, world in enumerate(ctx.worlds):
            w = copy.deepcopy(world)  # a scratch copy, put back into the env's state for each candidate
            snap = world.snapshot()
            for j in range(k):
                w.restore(snap)
                for step in range(max(scored) + 1):
                    render = step in scored
                    frame = w.step(actions[i, j, step], positions[i, j, step], render=render)
                    if render:
                        frames[i, j, scored.index(step)] = frame
        dist = np.full((e, k, h), np.nan)
        self.cost.begin(ctx)
        dist[:, :, scored] = self.cost(ctx, frames=frames)
        self.seconds += time.perf_counter() - start
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
    """Start the next plan's mean from the previous best sequence, shifted by the steps executed since."""
    keep_elites: float = 0.0
    """Fraction of the previous plan's elites, shifted like the warm start, that join the next plan's
    first candidates (iCEM's sample reuse between replans, Pinneri et al. 2020; needs ``warm_start``)."""
    population_decay: float = 1.0
    """iCEM's population decay: iteration i samples ``population / population_decay**i`` candidates (at
    least ``2 * elites + 1``; 1 keeps the population)."""
    final_weight: float = 1.0
    """Cost = mean_weight * mean cost over the horizon + final_weight * cost at its last step."""
    mean_weight: float = 1.0
    """See ``final_weight`` (0: only the last step is imagined in full and scored; the oracle then
    renders one frame per candidate)."""
    repeat: int = 1
    """Steps each sampled action row is held for (the data holds rows for 2)."""
    smoothing: float = 0.0
    """Correlation of the sampling noise between consecutive rows (0 white noise .. <1 smooth)."""
    replan_every: int = 1
    """Steps `PlannerPolicy` executes from one plan before planning again."""

    def __post_init__(self):
        if self.horizon < 1 or self.iterations < 1 or not 1 <= self.elites < self.population:
            raise ValueError(f"CEMConfig needs horizon >= 1, iterations >= 1, 1 <= elites < population; got {self}")
        if self.repeat < 1 or self.replan_every < 1 or not 0 <= self.smoothing < 1:
            raise ValueError(f"CEMConfig needs repeat >= 1, replan_every >= 1, 0 <= smoothing < 1; got {self}")
        if self.mean_weight < 0 or self.final_weight < 0 or self.mean_weight + self.final_weight <= 0:
            raise ValueError(f"CEMConfig needs mean_weight, final_weight >= 0, not both 0; got {self}")
        if not 0 <= self.keep_elites <= 1 or not self.population_decay >= 1:
            raise ValueError(f"CEMConfig needs 0 <= keep_elites <= 1 and population_decay >= 1; got {self}")

    def population_at(self, iteration: int) -> int:
        """Candidates sampled at ``iteration`` (0-based), after ``population_decay``."""
        decayed = int(round(self.population / self.population_decay ** iteration))
        return min(self.population, max(decayed, 2 * self.elites + 1))


#: The pushing benchmark's planner (the README's tables): population 200, 3 refits, 6 rows held 2
#: steps (horizon 12), smooth sampling, replanning every 2 steps.
PUSH_CEM = CEMConfig(horizon=12, population=200, elites=20, iterations=3, repeat=2, smoothing=0.5,
                     replan_every=2, mean_weight=0.0, final_weight=1.0)


@dataclass
class CEMPlanner:
    """Plans the next actions of E envs with the cross-entropy method.

    Args:
        dynamics: `ModelDynamics` (learned world) or `SimDynamics` (true world, oracle).
        config: CEM settings.
        seed: seeds the candidate sampling and the dynamics' latent noise (per env, see the module).
        sim_config: the world whose kinematics and action limits positions and actions obey.

    After `plan`, ``best_costs`` (iterations, E) holds the best candidate cost of each iteration,
    ``elite_costs`` (iterations, E) the elites' mean cost, ``sequence`` (E, H, 4) the best sequence,
    ``initial_mean`` (E, R, 4) the first iteration's mean rows (the warm start) and ``frames`` the
    candidate frames imagined so far (E x candidates x horizon per iteration, summed over calls).
    """

    dynamics: Dynamics
    config: CEMConfig = CEMConfig()
    seed: int | None = 0
    sim_config: SimConfig = SimConfig()
    best_costs: np.ndarray = field(init=False, default=None)
    elite_costs: np.ndarray = field(init=False, default=None)
    sequence: np.ndarray = field(init=False, default=None)

    def __post_init__(self):
        self.timings: dict[str, float] = {"plan": 0.0, "dynamics": 0.0, "cem": 0.0}  # seconds, accumulated
        self.low, self.high = (b.astype(np.float64) for b in action_bounds(self.sim_config))
        self.rng = np.random.default_rng(self.seed)
        # episode key -> (step planned at, (H, 4) best, (n_elite, H, 4) elites), for the warm starts
        self._last: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}
        self.initial_mean: np.ndarray | None = None
        self.frames = 0

    def reset(self) -> None:
        """Forget the warm starts (call at the start of new episodes)."""
        self._last = {}

    def _initial_rows(self, ctx: PlanContext, keys: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The first iteration's mean rows (E, R, 4) and the previous plans' kept elites (E, n_keep, R, 4)
        (None when none are kept), both shifted by the steps executed since; the mean's tail is the cold
        mean, the elites' tail (and every entry of an env without a previous plan) NaN: freshly sampled."""
        cfg, r = self.config, self.config.repeat
        mean = np.zeros((ctx.num_envs, n_rows, 4))
        mean[..., 2] = (self.low[2] + self.high[2]) / 2  # grip mid-range; z command 0 holds height
        n_keep = int(round(cfg.keep_elites * cfg.elites)) if cfg.warm_start else 0
        kept = np.full((ctx.num_envs, n_keep, n_rows, 4), np.nan)
        for i, key in enumerate(keys):
            if not cfg.warm_start or int(key) not in self._last:
                continue
            t0, seq, elites = self._last[int(key)]
            shift = len(ctx.frames[i]) - t0  # steps executed since that plan
            prev = seq[shift:][::r]  # the previous best from the current step, one step per row
            mean[i, :min(len(prev), n_rows)] = prev[:n_rows]
            prev = elites[:n_keep, shift:][:, ::r]  # (n_keep, rows left, 4)
            kept[i, :len(prev), :min(prev.shape[1], n_rows)] = prev[:, :n_rows]
        return mean, (kept if n_keep else None)

    def plan(self, ctx: PlanContext) -> np.ndarray:
        """The next action (E, 4) of every env in ``ctx`` (float32, quantised, within the action box)."""
        return self.plan_sequence(ctx)[:, 0]

    def plan_sequence(self, ctx: PlanContext) -> np.ndarray:
        """The best action sequence (E, H, 4) of every env (float32, quantised, rows held ``repeat`` steps).

        ``timings`` accumulates the wall time of the calls ("plan"), of the dynamics in them
        ("dynamics") and the rest, the CEM's sampling, refitting and bookkeeping ("cem")."""
        start, before = time.perf_counter(), self.dynamics.seconds
        sequence = self._plan_sequence(ctx)
        total, dyn = time.perf_counter() - start, self.dynamics.seconds - before
        for key, value in (("plan", total), ("dynamics", dyn), ("cem", total - dyn)):
            self.timings[key] += value
        return sequence

    def _plan_sequence(self, ctx: PlanContext) -> np.ndarray:
        cfg, e = self.config, ctx.num_envs
        h = int(max(1, min(cfg.horizon, int(np.max(ctx.steps_left)))))
        r, k, n_elite = cfg.repeat, cfg.population, cfg.elites
        n_rows = -(-h // r)
        keys = np.arange(e) if ctx.keys is None else np.asarray(ctx.keys)
        seeds = episode_seeds(self.seed, ctx)
        rngs = [np.random.default_rng(int(s)) for s in seeds]
        span = self.high - self.low
        mean, kept = self._initial_rows(ctx, keys, n_rows)  # (E, R, 4), (E, n_keep, R, 4) or None
        self.initial_mean = mean.copy()
        std = np.broadcast_to(np.asarray(cfg.init_std, np.float64), (e, n_rows, 4)).copy()
        elites = kept  # (E, n_elite, R, 4) carried into the next iteration's candidates
        best, elite_mean = np.empty((cfg.iterations, e)), np.empty((cfg.iterations, e))
        # weight of each step in the cost: beyond an env's last step nothing counts
        live = (np.arange(h)[None] < np.maximum(ctx.steps_left, 1)[:, None]).astype(np.float64)  # (E, H)
        last = np.maximum(np.minimum(ctx.steps_left, h), 1) - 1  # (E,) index of each env's last counted step
        scored = None if cfg.mean_weight > 0 else sorted(set(last.tolist()))
        a = cfg.smoothing
        for it in range(cfg.iterations):
            k = cfg.population_at(it)
            noise = np.stack([g.standard_normal((k, n_rows, 4)) for g in rngs])  # (E, K, R, 4), per env
            for row in range(1, n_rows):  # AR(1) across rows: correlated, unit variance
                noise[:, :, row] = a * noise[:, :, row - 1] + np.sqrt(1 - a * a) * noise[:, :, row]
            rows = mean[:, None] + std[:, None] * noise  # (E, K, R, 4)
            rows[:, 0] = mean  # the mean itself is always a candidate
            if elites is not None:  # the previous iteration's elites (first iteration: the kept ones, NaN = sampled)
                n = elites.shape[1]
                rows[:, 1:1 + n] = np.where(np.isnan(elites), rows[:, 1:1 + n], elites)
            rows = quantise_action(np.clip(rows, self.low, self.high), self.sim_config)
            cand = np.repeat(rows, r, axis=2)[:, :, :h]  # (E, K, R, 4) -> (E, K, H, 4): each row held r steps
            positions = self._positions(ctx.positions, cand)  # (E, K, H, 3)
            dist = self.dynamics.imagine(ctx, cand, positions, self.rng, seeds=seeds + 7919 * it, steps=scored)
            self.frames += e * k * (h if scored is None else max(scored) + 1)
            cost = cfg.final_weight * np.take_along_axis(dist, last[:, None, None], -1)[..., 0]  # (E, K)
            if cfg.mean_weight > 0:
                cost = cost + cfg.mean_weight * (dist * live[:, None]).sum(-1) / live.sum(-1)[:, None]
            order = np.argsort(cost, axis=1, kind="stable")[:, :n_elite]  # (E, n_elite)
            elites = np.take_along_axis(rows, order[:, :, None, None], axis=1)  # (E, n_elite, R, 4)
            best[it] = np.take_along_axis(cost, order[:, :1], 1)[:, 0]
            elite_mean[it] = np.take_along_axis(cost, order, 1).mean(1)
            mean = elites.mean(1)
            std = np.maximum(elites.std(1), cfg.min_std * span)
        self.best_costs, self.elite_costs = best, elite_mean
        self.sequence = np.repeat(elites[:, 0], r, axis=1)[:, :h].astype(np.float32)  # (E, H, 4)
        held = np.repeat(elites, r, axis=2)[:, :, :h]  # (E, n_elite, R, 4) -> (E, n_elite, H, 4)
        for i, key in enumerate(keys):
            self._last[int(key)] = (len(ctx.frames[i]), self.sequence[i].astype(np.float64), held[i])
        return self.sequence

    def _positions(self, start: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """(E, 3) start positions and (E, K, H, 4) actions -> (E, K, H, 3) the position at each step."""
        e, k, h = actions.shape[:3]
        pos = np.broadcast_to(np.asarray(start, np.float64)[:, None], (e, k, 3)).copy()
        out = np.empty((e, k, h, 3))
        for step in range(h):
            out[:, :, step] = pos
            pos = arm_step(pos, actions[:, :, step], config=self.sim_config)
        return out
