"""Env throughput: steps/s of BairWorld-v0 and of the native vector env at N = 1, 8, 64, per precision.

    python benchmarks/bench_env.py --checkpoint runs/<name>/best        # a trained model
    python benchmarks/bench_env.py --preset cpu                          # random weights, same cost
    python benchmarks/bench_env.py --precisions float32 --threads 1     # one precision, one thread

Speed does not depend on the weights, so ``--preset`` builds a random-weight model of that
architecture in a temporary checkpoint. References come from an in-memory pool generated once by
the pushing world, so the numbers measure the env and the model, not the data source (the
autoreset of the vector rows still costs a context feed every 28 steps). Every ratio in the table
is measured in this one run, against the single env on the same device, precision, mode and threads.
Precisions a device cannot run (float16 on CPU) are skipped with a note.

``--modes`` (default both) times the eager step and the envs' ``compile=True`` (torch.compile of
the step; the compilation is warm-up, not timed). The last line compares the fastest vector env at the largest N with the fastest single
env of any precision and mode: the ratio a user choosing both well gets.

Measured with the bundled model on an idle 2-core AMD EPYC with AVX512-BF16, 2 threads, best of
3 x 256 steps (full table and the roofline bound on the ratio: docs/benchmarks.md):

    precision  mode      env           steps/s  ms/call  x single
    float32    eager     single          202.0     5.21      1.00
    float32    eager     vector N=64     645.2    99.19      3.19
    float32    compiled  single          386.2     2.34      1.00
    bfloat16   eager     vector N=64    1453.6    43.40      6.05
    bfloat16   compiled  single          398.6     2.28      1.00
    fastest vector N=64 / fastest single: 1453.6 / 398.6 = 3.65x

"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bair_world.envs import BairWorldEnv, BairWorldVectorEnv
from bair_world.envs.references import Reference, ReferenceSource, SimReferences
from bair_world.world_model import PRECISIONS, check_precision


class _Pool(ReferenceSource):
    """A fixed in-memory pool of references (index i is the source's rollout i)."""

    def __init__(self, source: ReferenceSource, size: int):
        super().__init__(cache_size=size)
        self._refs = [source[i] for i in range(size)]

    def __len__(self) -> int:
        return len(self._refs)

    def _load(self, index: int) -> Reference:
        return self._refs[index]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_rate(chunks: list[tuple[int, float]]) -> float:
    """Env steps/s of the fastest chunk: other processes on the cores only ever slow a chunk down."""
    return max(done / elapsed for done, elapsed in chunks)


def bench_single(kwargs: dict, steps: int, repeats: int = 1, warmup: int = 8) -> tuple[float, float]:
    """(env steps/s of the best of ``repeats`` runs of ``steps``, median per-step latency in ms) of one BairWorldEnv.

    ``warmup`` untimed steps first (allocator, cuDNN autotune, the compilation of ``compile=True``).
    """
    env = BairWorldEnv(**kwargs)
    obs, info = env.reset(seed=0)
    for _ in range(warmup):
        _, _, _, truncated, info = env.step(np.concatenate([info["action"], info["position"]]))
        if truncated:
            _, info = env.reset()
    lat, chunks = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            t0 = time.perf_counter()
            _, _, _, truncated, info = env.step(np.concatenate([info["action"], info["position"]]))
            _sync(env.episodes.device)
            lat.append(time.perf_counter() - t0)
            if truncated:  # the reset (a context feed every 28 steps) is part of the cost
                _, info = env.reset()
        chunks.append((steps, time.perf_counter() - start))
    return _best_rate(chunks), 1e3 * float(np.median(lat))


def bench_vector(kwargs: dict, n: int, steps: int, repeats: int = 1) -> tuple[float, float]:
    """(env steps/s summed over rows, best of ``repeats``; median per-call latency in ms) of a BairWorldVectorEnv."""
    env = BairWorldVectorEnv(n, **kwargs)
    _, infos = env.reset(seed=0)
    for _ in range(2):  # warm-up (allocator, cuDNN autotune, compilation at this batch size)
        _, _, _, _, infos = env.step(np.concatenate([infos["action"], infos["position"]], axis=1))
    calls = max(3, steps // n)
    lat, chunks = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            t0 = time.perf_counter()
            _, _, _, _, infos = env.step(np.concatenate([infos["action"], infos["position"]], axis=1))
            _sync(env.episodes.device)
            lat.append(time.perf_counter() - t0)
        chunks.append((calls * n, time.perf_counter() - start))
    return _best_rate(chunks), 1e3 * float(np.median(lat))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="checkpoint directory (else --preset)")
    parser.add_argument("--preset", default="cpu", help="random-weight model preset when no --checkpoint")
    parser.add_argument("--steps", type=int, default=256, help="env steps per timed run")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per table row; the fastest counts (robust to other load on the cores)")
    parser.add_argument("--sizes", default="1,8,64", help="vector env sizes")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's, all cores)")
    parser.add_argument("--precisions", default="float32,bfloat16,float16",
                        help="comma-separated model precisions; each device runs those it supports")
    parser.add_argument("--modes", default="eager,compiled",
                        help="comma-separated: eager, compiled (the envs' compile=True, torch.compile of the step)")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in ("eager", "compiled") for m in modes):
        parser.error(f"--modes: choose from eager, compiled; got {args.modes!r}")
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown or not precisions:
        parser.error(f"--precisions: unknown {unknown}; choose from {sorted(PRECISIONS)}")
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be >= 1")
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    tmp = None
    checkpoint = args.checkpoint
    if checkpoint is None:
        from bair_world.checkpoint import save_checkpoint
        from bair_world.models import SVG, preset

        tmp = tempfile.TemporaryDirectory()
        checkpoint = save_checkpoint(Path(tmp.name) / args.preset, SVG(preset(args.preset)), step=0, epoch=0)
    sizes = [int(s) for s in args.sizes.split(",")]
    pool = _Pool(SimReferences(), max(sizes) + 8)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"checkpoint: {args.checkpoint or 'random ' + args.preset + ' preset'}; torch threads "
          f"{torch.get_num_threads()}{'' if args.threads else ' (default)'}; best of {args.repeats} runs of {args.steps} env steps per row")
    print(f"{'device':<6} {'precision':<9} {'mode':<8} {'env':<12} {'steps/s':>10} {'ms/call':>9} {'x single':>9}")
    for device in devices:
        best_single, best_vector = ("", 0.0), ("", 0.0)
        for precision in precisions:
            try:
                check_precision(precision, device)
            except ValueError as exc:
                print(f"{device:<6} {precision:<9} skipped: {exc}")
                continue
            for mode in modes:
                kwargs = {"checkpoint": checkpoint, "device": device, "references": pool, "precision": precision,
                          "compile": mode == "compiled"}
                head = f"{device:<6} {precision:<9} {mode:<8}"
                base, lat = bench_single(kwargs, args.steps, args.repeats)
                print(f"{head} {'single':<12} {base:>10.1f} {lat:>9.2f} {1.0:>9.2f}", flush=True)
                best_single = max(best_single, (f"{precision} {mode}", base), key=lambda x: x[1])
                for n in sizes:
                    sps, lat = bench_vector(kwargs, n, args.steps, args.repeats)
                    print(f"{head} {f'vector N={n}':<12} {sps:>10.1f} {lat:>9.2f} {sps / base:>9.2f}", flush=True)
                    if n == max(sizes):
                        best_vector = max(best_vector, (f"{precision} {mode}", sps), key=lambda x: x[1])
        if best_single[1] and best_vector[1]:
            print(f"{device}: fastest vector env N={max(sizes)} ({best_vector[0]}) {best_vector[1]:.1f} steps/s = "
                  f"{best_vector[1] / best_single[1]:.2f}x the fastest single env ({best_single[0]}, "
                  f"{best_single[1]:.1f} steps/s)")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
