"""What makes long rollouts hold: trained candidates scored on both protocols, one table.

    python benchmarks/ablation_table.py NAME=CHECKPOINT_DIR [NAME=CHECKPOINT_DIR ...]
        [--split validate] [--max-sequences 128] [--threads 2] [--env-steps 200] [--json rows.json]

Every candidate is scored by ``training/evaluate.py`` on the same split of the embedded pushing-world
data (the validate split by default: candidates are chosen there, the test split stays unseen) with
one rollout of 2 context -> 28 predicted frames per sequence and one prior sample; the 2 -> 10
columns are its first 10 frames (the seed's protocol). Columns: PSNR and SSIM per protocol, PSNR
over the arm region (whole episode and last step) and over the objects, the sharpness ratio over the arm and objects (prediction /
recorded, 1 = as sharp as the truth) over the episode; then the counterfactual columns
(`bair_world.counterfactual`, the first ``--cf-starts`` sequences of the split, each started in the
true pushing world and driven there and in the model by the same new actions): under scripted
pushes PSNR, SSIM, arm PSNR, object PSNR (pooled over pixels) and the recall of the pixels objects
arrived at; under random actions SSIM over the episode and at the last step; action sensitivity
(replay PSNR with the right actions minus another sequence's); the training steps recorded in the
checkpoint, and the speed of one ``BairWorld-v0`` env (float32, eager, steps/s; timed round-robin
with the other candidates so machine load hits all alike). A copy-last-frame row comes first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bair_world import counterfactual
from bair_world.data.default_data import default_data_root
from bair_world.training.evaluate import evaluate

CF_COLUMNS = {  # column name: (source, metric)
    "push_psnr": ("push", "psnr"), "push_ssim": ("push", "ssim"), "push_arm": ("push", "arm_psnr"),
    "push_objects": ("push", "objects_psnr_pooled"), "push_arrived": ("push", "arrived_recall"),
    "random_ssim": ("random", "ssim"), "random_ssim_last": ("random", "last_step_ssim"),
}


def _counterfactual(ckpt: Path, data_root, split: str, starts: int) -> dict[str, dict[str, float]]:
    """{column: {"model", "copy_last"}} of the counterfactual columns, plus "sensitivity"."""
    root = default_data_root(data_root, split, progress=False)
    report = counterfactual.evaluate(ckpt, root, split=split, sources=("push", "random"), count=starts)
    out = {col: report["sources"][src]["table"][metric] for col, (src, metric) in CF_COLUMNS.items()}
    out["sensitivity"] = {"model": report["sensitivity"]["sensitivity_db"]["mean"], "copy_last": None}
    return out


def _env_rates(checkpoints: dict[str, Path], steps: int, rounds: int = 3) -> dict[str, float]:
    """Steps/s of one BairWorld-v0 per checkpoint: ``rounds`` round-robin chunks, the fastest counts."""
    import gymnasium as gym

    import bair_world  # noqa: F401  (registers the env)

    envs = {}
    for name, ckpt in checkpoints.items():
        env = gym.make("BairWorld-v0", checkpoint=str(ckpt), device="cpu").unwrapped
        env.reset(seed=0)
        envs[name] = env
    best = {name: 0.0 for name in envs}
    action = next(iter(envs.values())).action_space.sample()
    for _ in range(rounds):
        for name, env in envs.items():
            env.reset(seed=0)
            n, start = 0, time.perf_counter()
            while n < steps:
                _, _, _, truncated, _ = env.step(action)
                n += 1
                if truncated:
                    env.reset(seed=0)
            best[name] = max(best[name], n / (time.perf_counter() - start))
    return best


def rows(checkpoints: dict[str, Path], split: str, max_sequences: int, env_steps: int,
         data_root: Path | None = None, cf_starts: int = 16) -> list[dict]:
    """One row per candidate (and the copy-last baseline first): the table's values."""
    out = []
    for name, ckpt in checkpoints.items():
        report = evaluate(ckpt, data_root, split=split, n_future=28, short_n_future=10, max_sequences=max_sequences,
                          progress=False, device="cpu")
        cf = _counterfactual(ckpt, data_root, split, cf_starts) if cf_starts else {}
        short, full = report["protocols"]["10"], report["protocols"]["28"]
        if not out:
            out.append({"name": "copy-last-frame", "psnr_10": short["baseline_psnr"], "ssim_10": short["baseline_ssim"],
                        "psnr_28": full["baseline_psnr"], "ssim_28": full["baseline_ssim"],
                        "arm_last": report["baseline"].get("arm_psnr", {"per_step": [None]})["per_step"][-1],
                        "sharpness": report["baseline"].get("moving_sharpness", {}).get("mean"), "steps": None,
                        "objects_28": full.get("baseline_objects_psnr"), "arm_28": full.get("baseline_arm_psnr"),
                        "env_steps_s": None, **{k: v["copy_last"] for k, v in cf.items()}})
        out.append({"name": name, "checkpoint": str(ckpt), "psnr_10": short["psnr"], "ssim_10": short["ssim"],
                    "psnr_28": full["psnr"], "ssim_28": full["ssim"], "arm_last": full.get("arm_psnr_last_step"),
                    "sharpness": full.get("moving_sharpness"), "steps": report["checkpoint"]["step"],
                    "objects_28": full.get("objects_psnr"), "arm_28": full.get("arm_psnr"),
                    **{k: v["model"] for k, v in cf.items()}})
        print(f"  {name}: 2->28 PSNR {full['psnr']:.2f} dB", flush=True)
    rates = _env_rates(checkpoints, env_steps) if env_steps else {}
    for row in out[1:]:
        row["env_steps_s"] = rates.get(row["name"])
    return out


def format_table(table: list[dict], split: str, n: int, cf_starts: int = 16) -> str:
    """Markdown table of `rows`."""
    f = lambda v, d=2: "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{d}f}"  # noqa: E731
    lines = [f"{split} split, {n} sequences, 1 prior sample; 2 -> 10 = the first 10 frames of the 2 -> 28 rollout",
             f"counterfactual columns: {cf_starts} starts, the true world driven by the same new actions",
             "| candidate | 2->10 PSNR | 2->10 SSIM | 2->28 PSNR | 2->28 SSIM | arm PSNR 2->28 | arm PSNR, last step | "
             "objects PSNR 2->28 | sharpness arm+objects | pushes: PSNR | pushes: SSIM | pushes: arm PSNR | "
             "pushes: objects PSNR | pushes: arrived recall | random: SSIM | random: SSIM, last step | "
             "action sensitivity (dB) | training steps | env steps/s |",
             "|" + "---|" * 19]
    for r in table:
        lines.append(f"| {r['name']} | {f(r['psnr_10'])} | {f(r['ssim_10'], 4)} | {f(r['psnr_28'])} | "
                     f"{f(r['ssim_28'], 4)} | {f(r.get('arm_28'))} | {f(r['arm_last'])} | {f(r.get('objects_28'))} | "
                     f"{f(r['sharpness'], 3)} | {f(r.get('push_psnr'))} | {f(r.get('push_ssim'), 3)} | "
                     f"{f(r.get('push_arm'))} | {f(r.get('push_objects'))} | {f(r.get('push_arrived'), 3)} | "
                     f"{f(r.get('random_ssim'), 3)} | {f(r.get('random_ssim_last'), 3)} | {f(r.get('sensitivity'))} | "
                     f"{r['steps'] if r['steps'] is not None else '–'} | {f(r['env_steps_s'], 0)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidates", nargs="+", help="NAME=CHECKPOINT_DIR, scored in this order")
    parser.add_argument("--split", default="validate")
    parser.add_argument("--data-root", type=Path, default=None, help="BAIR folder (default: the embedded data)")
    parser.add_argument("--max-sequences", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--env-steps", type=int, default=200, help="env steps per timing chunk (0: skip timing)")
    parser.add_argument("--cf-starts", type=int, default=16, help="counterfactual starts (0: skip those columns)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    checkpoints = {}
    for item in args.candidates:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_dir():
            parser.error(f"{item!r}: expected NAME=CHECKPOINT_DIR with an existing folder")
        checkpoints[name] = Path(path)
    torch.set_num_threads(args.threads)
    table = rows(checkpoints, args.split, args.max_sequences, args.env_steps, args.data_root, args.cf_starts)
    print(format_table(table, args.split, args.max_sequences, args.cf_starts))
    if args.json:
        out = Path(args.json)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(table, indent=2))
        os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
