"""The pushing (and reaching) benchmark: every policy's episodes executed in the TRUE pushing world.

    python examples/push_benchmark.py --task push --goals 32 --out-dir runs/push-bench
    python examples/push_benchmark.py --task push --goals 32 --rows model --checkpoint runs/<name>/best

Rows: ``nothing`` (hold still), ``random`` (uniform actions), ``model`` (the CEM planner of
`bair_world.planning` on the learned model with the pixel cost: `bair_world.planning.PUSH_CEM` unless
overridden), ``readout`` and ``mix`` (the same planner with the state-readout cost, or pixel + readout:
`bair_world.plan_costs`; the readout saved with the checkpoint, ``bair-world readout``, or ``--readout``)
and ``oracle`` (the same planner with the true world as its model). The model rows record where their
time went (context feed, encoder, predictor, decoder, cost, CEM). Each row's result is written to
``<out-dir>/<task>-<row>.json`` as soon as it is done; rows already there are read back, not rerun
(``--force`` reruns them); the episodes of each finished group go to ``<task>-<row>.partial.jsonl``
at once, so a stopped run resumes where it was, ``--goals 8`` summarises the first 8 goals of a
longer run, and one row (a new model) is re-run alone with ``--rows model --force``.
Prints success, distances (the goal object, the arm, the image) and wall time split into the
policy (model calls or oracle simulation, and the CEM) and the true world stepping the episodes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bair_world.checkpoint import load_model, resolve_checkpoint
from bair_world.envs.goal_eval import DoNothingPolicy, PlannerPolicy, RandomPolicy, evaluate_goal_policy
from bair_world.envs.push_world_env import PushWorldGoalEnv
from bair_world.envs.references import SimReferences
from bair_world.goal_tasks import TASKS, make_task
from bair_world.planning import PUSH_CEM, CEMPlanner, ModelDynamics, SimDynamics, make_cost
from bair_world.world_model import WorldModel

ROWS = ("nothing", "random", "model", "readout", "mix", "oracle")
DEFAULT_ROWS = ("nothing", "random", "model", "readout", "oracle")
MODEL_ROWS = {"model": "pixel", "readout": "readout", "mix": "mix"}  # row -> planner cost


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=tuple(TASKS), default="push", help="the goal task (bair_world.goal_tasks)")
    p.add_argument("--goals", type=int, default=32, help="episodes: the task's first N goals (reach: references 0..N-1)")
    p.add_argument("--rows", default=",".join(DEFAULT_ROWS), help=f"comma-separated rows of {ROWS}")
    p.add_argument("--readout", default=None, help="the readout/mix rows' state readout (default: the checkpoint's)")
    p.add_argument("--mix-weight", type=float, default=1.0, help="the mix row's readout weight (metres vs image distance)")
    p.add_argument("--checkpoint", default=None, help="the model row's checkpoint (default: the bundled one)")
    p.add_argument("--precision", default="bfloat16", help="the model's precision (float32 | bfloat16)")
    p.add_argument("--num-envs", type=int, default=4, help="episodes planned together (one batched model call)")
    for name in ("horizon", "population", "elites", "iterations", "repeat", "replan_every"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(PUSH_CEM, name))
    p.add_argument("--smoothing", type=float, default=PUSH_CEM.smoothing)
    p.add_argument("--keep-elites", type=float, default=PUSH_CEM.keep_elites,
                   help="fraction of the previous plan's elites reused, shifted, by the next (iCEM)")
    p.add_argument("--population-decay", type=float, default=PUSH_CEM.population_decay,
                   help="iCEM's population decay per CEM iteration (1: none)")
    p.add_argument("--mean-weight", type=float, default=PUSH_CEM.mean_weight)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out-dir", default="runs/push-benchmark")
    p.add_argument("--force", action="store_true", help="rerun rows whose results are already in --out-dir")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    rows = [r for r in args.rows.split(",") if r]
    if not rows or set(rows) - set(ROWS):
        print(f"error: --rows must name some of {ROWS}, got {args.rows!r}", file=sys.stderr)
        return 2
    try:
        checkpoint = resolve_checkpoint(args.checkpoint) if set(rows) & set(MODEL_ROWS) else None
        if set(rows) & {"readout", "mix"}:
            row_cost("readout", args, checkpoint)  # a missing or another model's readout: refused before any row
        cfg = replace(PUSH_CEM, horizon=args.horizon, population=args.population, elites=args.elites,
                      iterations=args.iterations, repeat=args.repeat, replan_every=args.replan_every,
                      smoothing=args.smoothing, mean_weight=args.mean_weight, keep_elites=args.keep_elites,
                      population_decay=args.population_decay)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    refs = SimReferences()
    task = make_task(args.task)  # one task (and goal pool) for every env
    indices = list(range(args.goals))
    n = min(args.num_envs, args.goals)
    envs = [PushWorldGoalEnv(references=refs, task=task, num_goals=args.goals) for _ in range(n)]
    results = {}
    for row in rows:
        path = out / f"{args.task}-{row}.json"
        if path.exists() and not args.force:
            done = json.loads(path.read_text())
            if sorted(e["index"] for e in done["episodes"]) == indices:  # the same goals: read back
                results[row] = done
                print(f"{row}: read {path}", flush=True)
                continue
        results[row] = run_row(row, args, envs, indices, cfg, checkpoint, out / f"{args.task}-{row}.partial.jsonl")
        path.write_text(json.dumps(results[row], indent=1, default=float))
        print(f"{row}: {len(indices)} episodes in {results[row]['wall_s']:.0f} s -> {path}", flush=True)
    print()
    print(format_rows(results, args.task))
    return 0


def run_row(row, args, envs, indices, cfg, checkpoint, partial: Path) -> dict:
    """One row, a group of ``len(envs)`` episodes at a time; each finished group is appended to
    ``partial`` (JSON lines) and a restarted run continues after the groups already there."""
    dynamics = None
    if row == "nothing":
        policy = DoNothingPolicy()
    elif row == "random":
        policy = RandomPolicy(args.seed)
    else:
        if row in MODEL_ROWS:
            dynamics = ModelDynamics(WorldModel(load_model(checkpoint), "cpu", precision=args.precision),
                                     cost=row_cost(row, args, checkpoint), profile=True)
        else:
            dynamics = SimDynamics()
        policy = PlannerPolicy(CEMPlanner(dynamics, cfg, seed=args.seed))
    groups = [json.loads(line) for line in partial.read_text().splitlines()] if partial.exists() and not args.force else []
    if args.force and partial.exists():
        partial.unlink()
    done = {e["index"] for g in groups for e in g["episodes"]}
    todo = [i for i in indices if i not in done]
    for start in range(0, len(todo), len(envs)):
        group = todo[start:start + len(envs)]
        before = 0.0 if dynamics is None else dynamics.seconds
        frames_before = 0 if dynamics is None else policy.planner.frames
        t0 = time.perf_counter()
        ev = evaluate_goal_policy(envs, policy, group, seed=args.seed, progress=f"{args.task} {row} {group}")
        g = {"episodes": ev.episodes, "wall_s": time.perf_counter() - t0, "policy_s": ev.policy_seconds,
             "world_s": ev.env_seconds, "dynamics_s": None if dynamics is None else dynamics.seconds - before,
             "split_s": split_seconds(policy, dynamics),
             "frames": None if dynamics is None else policy.planner.frames - frames_before}
        groups.append(g)
        with partial.open("a") as f:
            f.write(json.dumps(g, default=float) + "\n")
        print(f"{row} {group}: success {[e['success'] for e in ev.episodes]} object "
              f"{[round(e['object_distance_m'], 3) for e in ev.episodes]} in {g['wall_s']:.0f} s"
              + (f", {g['frames']} candidate frames, {1000 * g['dynamics_s'] / max(g['frames'], 1):.2f} ms each"
                 if dynamics is not None else ""), flush=True)
    groups = [g for g in groups if {e["index"] for e in g["episodes"]} <= set(indices)]  # --goals N: the first N
    episodes = [e for g in groups for e in g["episodes"]]
    total = lambda k: None if groups and groups[0][k] is None else sum(g[k] for g in groups)  # noqa: E731
    col = lambda k: float(np.mean([e[k] for e in episodes]))  # noqa: E731
    summary = {"episodes": len(episodes), "success_rate": col("success"), "goal_distance": col("goal_distance"),
               "arm_distance_m": col("arm_distance_m"), "object_distance_m": col("object_distance_m"),
               "steps": col("steps")}
    frames = None if dynamics is None else sum(g.get("frames") or 0 for g in groups)
    return {"row": row, "task": args.task, "summary": summary, "episodes": episodes, "wall_s": total("wall_s"),
            "policy_s": total("policy_s"), "world_s": total("world_s"), "dynamics_s": total("dynamics_s"),
            "frames": frames,  # candidate frames imagined (or simulated, the oracle) by the planner
            "checkpoint": None if row not in MODEL_ROWS else str(checkpoint),
            "precision": args.precision if row in MODEL_ROWS else None,
            "split_s": groups[-1].get("split_s") if groups else None,
            "planner": None if dynamics is None else vars(cfg) | {"init_std": list(cfg.init_std)}}


def row_cost(row: str, args, checkpoint):
    """The planner cost of a model row (the readout rows load the readout saved with the checkpoint)."""
    if MODEL_ROWS[row] == "pixel":
        return make_cost("pixel")
    from bair_world.checkpoint import read_config
    from bair_world.readout import load_readout

    readout, _ = load_readout(args.readout or checkpoint, read_config(checkpoint).get("model_sha256"))
    return make_cost(MODEL_ROWS[row], readout, args.mix_weight)


def split_seconds(policy, dynamics) -> dict | None:
    """A planner row's time so far: the model's split (context feed, encoder, predictor, decoder, cost) and the CEM's."""
    if dynamics is None:
        return None
    planner = policy.planner
    return {**{k: round(v, 3) for k, v in getattr(dynamics, "timings", {}).items()}, "cem": round(planner.timings["cem"], 3)}


def format_rows(results: dict, task: str) -> str:
    head = (f"| policy ({task}) | episodes | success | object (m) | arm (m) | image dist | wall (s) | "
            f"policy: model/oracle (s) | true world (s) |")
    lines = [head, "|" + "---|" * 9]
    for row, r in results.items():
        s = r["summary"]
        dyn = "–" if r["dynamics_s"] is None else f"{r['dynamics_s']:.0f}"
        lines.append(f"| {row} | {s['episodes']} | {s['success_rate']:.2f} | {s['object_distance_m']:.3f} | "
                     f"{s['arm_distance_m']:.3f} | {s['goal_distance']:.4f} | {r['wall_s']:.0f} | {dyn} | {r['world_s']:.0f} |")
    splits = [f"{row}: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["split_s"].items())
              for row, r in results.items() if r.get("split_s")]
    return "\n".join(lines + (["", "time split (cumulative over the row): " + "; ".join(splits)] if splits else []))


if __name__ == "__main__":
    sys.exit(main())
