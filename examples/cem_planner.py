"""Model-predictive control with the cross-entropy method in the learned world, scored in the true world.

    python examples/cem_planner.py --checkpoint runs/<name>/best --episodes 4 --out-dir cem_videos

The planner imagines K candidate action sequences per env with the learned SVG model (one batched
model call per imagined step for all envs and candidates) and executes the first action of the best.
It is evaluated in ``BairWorldGoal-v0`` (the learned world) and in ``PushWorldGoal-v0`` (the true
pushing world, same goals), beside uniform random actions; ``--oracle`` adds the same planner using
the true world as its model (an upper bound, slower); ``--samples S --spread-weight W`` adds the
uncertainty-aware planner (each candidate scored over S latent draws: mean + W * std of its
distance), so plans that only look good in a blurred or lucky future are penalised. Prints a results table and writes videos
(episode | goal) of the first episode of every row.
"""

from __future__ import annotations

import argparse
import sys

import torch

from bair_world.checkpoint import load_model
from bair_world.devices import resolve_device
from bair_world.envs.goal import BairWorldGoalEnv
from bair_world.envs.goal_eval import PlannerPolicy, RandomPolicy, compare_policies
from bair_world.envs.push_world_env import PushWorldGoalEnv
from bair_world.envs.references import SimReferences
from bair_world.checkpoint import resolve_checkpoint
from bair_world.planning import CEMConfig, CEMPlanner, ModelDynamics, SimDynamics
from bair_world.world_model import WorldModel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="checkpoint directory (None: the bundled one)")
    parser.add_argument("--episodes", type=int, default=4, help="goal episodes per world (reference indices 0..n-1)")
    parser.add_argument("--num-envs", type=int, default=4, help="episodes planned together (one batched model call)")
    parser.add_argument("--horizon", type=int, default=4)
    parser.add_argument("--population", type=int, default=24)
    parser.add_argument("--elites", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--oracle", action="store_true", help="also plan with the true world as the model")
    parser.add_argument("--samples", type=int, default=1,
                        help="latent draws per candidate of the uncertainty-aware planner (1 = no such rows)")
    parser.add_argument("--spread-weight", type=float, default=1.0,
                        help="weight of the draws' std in the uncertainty-aware planner's distance")
    parser.add_argument("--worlds", default="learned,true",
                        help="comma-separated worlds to score in: learned, true (the oracle is always true)")
    parser.add_argument("--skip", default="", help="comma-separated rows to leave out: random, cem-model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out-dir", default="cem_videos", help="where the episode | goal videos go")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        checkpoint = resolve_checkpoint(args.checkpoint)
        cfg = CEMConfig(horizon=args.horizon, population=args.population, elites=args.elites, iterations=args.iterations)
        if args.samples < 1 or args.spread_weight < 0:
            raise ValueError(f"--samples must be >= 1 and --spread-weight >= 0, got {args.samples}, {args.spread_weight}")
        worlds = [w for w in args.worlds.split(",") if w]
        if not worlds or set(worlds) - {"learned", "true"}:
            raise ValueError(f"--worlds must name learned and/or true, got {args.worlds!r}")
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    refs = SimReferences(size=max(args.episodes, 1))
    n = min(args.num_envs, args.episodes)
    learned = [BairWorldGoalEnv(checkpoint=checkpoint, references=refs, device=device) for _ in range(n)]
    true = [PushWorldGoalEnv(references=refs) for _ in range(n)]
    cem = lambda dyn: PlannerPolicy(CEMPlanner(dyn, cfg, seed=args.seed))  # noqa: E731
    envs_of = {"learned": learned, "true": true}
    model = lambda samples=1, spread=0.0: ModelDynamics(WorldModel(load_model(checkpoint, device), device),  # noqa: E731
                                                        samples, spread)
    rows = {"random": lambda: RandomPolicy(args.seed), "cem-model": lambda: cem(model())}
    if args.samples > 1:
        rows["cem-uncertainty"] = lambda: cem(model(args.samples, args.spread_weight))
    skip = set(args.skip.split(","))
    runs = [(name, world, envs_of[world], make()) for name, make in rows.items() if name not in skip for world in worlds]
    if args.oracle:
        runs.append(("cem-oracle", "true", true, cem(SimDynamics())))
    table = compare_policies(runs, range(args.episodes), args.out_dir, seed=args.seed,
                             log=lambda line: print(line, flush=True))
    print()
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
