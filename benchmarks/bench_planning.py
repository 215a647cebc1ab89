"""Where one planning call's time goes: the CEM planner on the learned model, per precision and setting.

    python benchmarks/bench_planning.py                                   # the bundled model, default rows
    python benchmarks/bench_planning.py --checkpoint runs/<name>/best --threads 1
    python benchmarks/bench_planning.py --rows float32:1x48x2x6,bfloat16:4x48x2x6

A row is ``precision:ExKxIxH[/D]`` (envs planned together, population, CEM iterations, horizon, and
optionally iCEM's population decay D: iteration i imagines K / D**i candidates, and R rows per model
call, `ModelDynamics.max_rows`, default 256). Every row
plans the same pushing goals from the same mid-episode state (``--history`` random steps taken in the
true world first), with the pixel cost and ``ModelDynamics(profile=True)``: its time split into the
context feed (``reset``), the encoder, the predictor, the decoder, the cost and the CEM's own work.
``ms/frame`` is the call's wall time over its imagined candidate frames (E x K x iterations x H), the
number the 32-goal estimate multiplies out. All rows are built and warmed up first (one call each:
oneDNN builds its kernels per shape), then timed round-robin, ``--repeats`` rounds, a row's fastest
call counts; ``x first`` is each row's ms/frame over the first row's, so compare ratios of one run
(the development machine is shared with training runs: absolute times vary with their load).

Measured on the loaded 2-core EPYC, 1 thread (table: docs/benchmarks.md, "Planning: where the time
goes"): the decoder is 70-84 % of a call, the encoder 9-18 %, predictor, cost and CEM a few %; bf16
0.63x float32's ms/frame at 800 rows; 800 rows in chunks of 200 (the default ``max_rows`` 256) 0.69x
800 rows in one model call (bf16 1.51 vs 2.18 ms per imagined candidate frame).
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from bair_world.checkpoint import load_model, resolve_checkpoint
from bair_world.envs.goal_eval import plan_context
from bair_world.envs.push_world_env import PushWorldGoalEnv
from bair_world.envs.references import SimReferences
from bair_world.goal_tasks import make_task
from bair_world.planning import MAX_ROWS, PUSH_CEM, CEMConfig, CEMPlanner, ModelDynamics
from bair_world.world_model import check_precision, WorldModel

DEFAULT_ROWS = ("float32:1x48x2x8,bfloat16:1x48x2x8,bfloat16:1x24x2x8,bfloat16:1x96x2x8,bfloat16:4x48x2x8,"
                "float32:4x200x1x2@800,float32:4x200x1x2,bfloat16:4x200x1x2@800,bfloat16:4x200x1x2,"
                "bfloat16:1x100x3x8/1.5")
PARTS = ("reset", "encoder", "predictor", "decoder", "cost", "cem")
_ROW = re.compile(r"^(\w+):(\d+)x(\d+)x(\d+)x(\d+)(?:/([\d.]+))?(?:@(\d+))?$")


@dataclass(frozen=True)
class Row:
    precision: str
    envs: int
    population: int
    iterations: int
    horizon: int
    decay: float = 1.0
    max_rows: int = MAX_ROWS

    def config(self) -> CEMConfig:
        return replace(PUSH_CEM, population=self.population, iterations=self.iterations, horizon=self.horizon,
                       elites=min(PUSH_CEM.elites, self.population // 4), population_decay=self.decay)

    @property
    def label(self) -> str:
        decay = "" if self.decay == 1 else f" /{self.decay:g}"
        chunk = "" if self.max_rows == MAX_ROWS else f" @{self.max_rows}"
        return f"{self.envs} x {self.population} x {self.iterations} x {self.horizon}{decay}{chunk}"


def parse_rows(text: str) -> list[Row]:
    rows = []
    for item in filter(None, text.split(",")):
        m = _ROW.match(item.strip())
        if not m:
            raise ValueError(f"a row is precision:ExKxIxH[/D][@R] (e.g. bfloat16:4x48x2x6), got {item!r}")
        check_precision(m[1], "cpu")
        rows.append(Row(m[1], *(int(g) for g in m.groups()[1:5]), float(m[6] or 1), int(m[7] or MAX_ROWS)))
    if not rows:
        raise ValueError("no rows given")
    return rows


def contexts(n_envs: int, history: int, seed: int = 0):
    """The `PlanContext` of ``n_envs`` pushing-goal envs after ``history`` random steps in the true world."""
    refs, task = SimReferences(), make_task("push")  # the push benchmark's goals 0..n_envs-1
    envs = [PushWorldGoalEnv(references=refs, task=task, num_goals=n_envs) for _ in range(n_envs)]
    rng = np.random.default_rng(seed)
    for i, env in enumerate(envs):
        env.reset(seed=seed, options={"index": i})
        for _ in range(history):
            env.step(rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32))
    return plan_context(envs)


def measure(model, rows: list[Row], history: int = 12, repeats: int = 2, seed: int = 0) -> list[dict]:
    """Time one planning call of every row (warm-up call first, then round-robin; fastest call counts)."""
    ctxs = {e: contexts(e, history, seed) for e in sorted({r.envs for r in rows})}
    planners = {}
    # one copy of the model per precision: a WorldModel converts its model's memory layout in place
    models = {p: copy.deepcopy(model) for p in sorted({r.precision for r in rows})}
    for row in rows:  # build and warm up
        dynamics = ModelDynamics(WorldModel(models[row.precision], "cpu", precision=row.precision), profile=True,
                                 max_rows=row.max_rows)
        planner = CEMPlanner(dynamics, row.config(), seed=seed)
        planners[row] = planner
        _call(planner, ctxs[row.envs])
    best: dict[Row, dict] = {}
    for _ in range(repeats):
        for row in rows:
            t = _call(planners[row], ctxs[row.envs])
            if row not in best or t["total"] < best[row]["total"]:
                best[row] = t
    out = []
    for row in rows:
        t = best[row]
        frames = t["frames"]
        out.append({"row": row.label, "precision": row.precision, "envs": row.envs, "population": row.population,
                    "iterations": row.iterations, "horizon": row.horizon, "batch": row.envs * row.population,
                    "frames": frames,
                    "call_s": t["total"], "ms_frame": 1000 * t["total"] / frames,
                    "split": {k: t.get(k, 0.0) / t["total"] for k in PARTS}})
    for r in out:
        r["x_first"] = r["ms_frame"] / out[0]["ms_frame"]
    return out


def _call(planner: CEMPlanner, ctx) -> dict:
    """One planning call from a cold warm-start -> its seconds: total and the split of `PARTS`."""
    ctx = copy.copy(ctx)  # a new context, as every replan has: its history is fed again
    planner.reset()
    planner.dynamics.timings.clear()
    before, frames = dict(planner.timings), planner.frames
    start = time.perf_counter()
    planner.plan_sequence(ctx)
    total = time.perf_counter() - start
    return {"total": total, **planner.dynamics.timings, "cem": planner.timings["cem"] - before["cem"],
            "frames": planner.frames - frames}


def format_table(rows: list[dict]) -> str:
    head = ("| precision | E x K x iters x H [/decay] [@rows] | batch | frames | call (s) | ms/frame | x first | "
            + " | ".join(PARTS) + " |")
    lines = [head, "|" + "---|" * (7 + len(PARTS))]
    for r in rows:
        split = " | ".join(f"{100 * r['split'][k]:.1f} %" for k in PARTS)
        lines.append(f"| {r['precision']} | {r['row']} | "
                     f"{r['batch']} | {r['frames']} | {r['call_s']:.2f} | {r['ms_frame']:.2f} | {r['x_first']:.2f} | "
                     f"{split} |")
    return "\n".join(lines)


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="the model (default: the bundled one)")
    p.add_argument("--preset", default=None, help="a random-weight model of this preset instead (tests: tiny)")
    p.add_argument("--rows", default=DEFAULT_ROWS, help="comma-separated precision:ExKxIxH[/D][@R]")
    p.add_argument("--history", type=int, default=12, help="random true-world steps before planning")
    p.add_argument("--repeats", type=int, default=2, help="timed rounds (a row's fastest call counts)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    try:
        rows = parse_rows(args.rows)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    if args.preset:
        from bair_world.models import SVG, model_preset
        torch.manual_seed(0)
        model, source = SVG(model_preset(args.preset)), f"random {args.preset}"
    else:
        ckpt = resolve_checkpoint(args.checkpoint)
        model, source = load_model(ckpt), str(ckpt)
    print(f"model {source}, {args.threads} thread(s), history {args.history} steps, fastest of {args.repeats}")
    print(format_table(measure(model, rows, args.history, args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
