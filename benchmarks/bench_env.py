"""Env throughput: steps/s of BairWorld-v0 and of the native vector env at N = 1, 8, 64.

    python benchmarks/bench_env.py --checkpoint runs/<name>/best        # a trained model
    python benchmarks/bench_env.py --preset cpu                          # random weights, same cost

Speed does not depend on the weights, so ``--preset`` builds a random-weight model of that
architecture in a temporary checkpoint. References come from an in-memory pool generated once by
the pushing world, so the numbers measure the env and the model, not the data source (the
autoreset of the vector rows still costs a context feed every 28 steps). Every ratio in the table
is measured in this one run, against the single env on the same device.
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


def bench_single(kwargs: dict, steps: int) -> tuple[float, float]:
    """(env steps/s, median per-step latency in ms) of one BairWorldEnv."""
    env = BairWorldEnv(**kwargs)
    obs, info = env.reset(seed=0)
    lat, done = [], 0
    start = time.perf_counter()
    while done < steps:
        t0 = time.perf_counter()
        _, _, _, truncated, info = env.step(np.concatenate([info["action"], info["position"]]))
        _sync(env.episodes.device)
        lat.append(time.perf_counter() - t0)
        done += 1
        if truncated:
            _, info = env.reset()
    elapsed = time.perf_counter() - start
    return done / elapsed, 1e3 * float(np.median(lat))


def bench_vector(kwargs: dict, n: int, steps: int) -> tuple[float, float]:
    """(env steps/s summed over rows, median per-call latency in ms) of a BairWorldVectorEnv."""
    env = BairWorldVectorEnv(n, **kwargs)
    _, infos = env.reset(seed=0)
    for _ in range(2):  # warm-up (allocator, cuDNN autotune at this batch size)
        _, _, _, _, infos = env.step(np.concatenate([infos["action"], infos["position"]], axis=1))
    calls = max(3, steps // n)
    lat = []
    start = time.perf_counter()
    for _ in range(calls):
        t0 = time.perf_counter()
        _, _, _, _, infos = env.step(np.concatenate([infos["action"], infos["position"]], axis=1))
        _sync(env.episodes.device)
        lat.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    return calls * n / elapsed, 1e3 * float(np.median(lat))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="checkpoint directory (else --preset)")
    parser.add_argument("--preset", default="cpu", help="random-weight model preset when no --checkpoint")
    parser.add_argument("--steps", type=int, default=512, help="env steps per measurement")
    parser.add_argument("--sizes", default="1,8,64", help="vector env sizes")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
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
    print(f"checkpoint: {args.checkpoint or 'random ' + args.preset + ' preset'}; torch threads {args.threads}; "
          f"{args.steps} env steps per row of the table")
    print(f"{'device':<6} {'env':<12} {'steps/s':>10} {'ms/call':>9} {'x single':>9}")
    for device in devices:
        kwargs = {"checkpoint": checkpoint, "device": device, "references": pool}
        bench_single(kwargs, 8)  # warm-up (allocator, cuDNN autotune)
        base, lat = bench_single(kwargs, args.steps)
        print(f"{device:<6} {'single':<12} {base:>10.1f} {lat:>9.2f} {1.0:>9.2f}")
        for n in sizes:
            sps, lat = bench_vector(kwargs, n, args.steps)
            print(f"{device:<6} {f'vector N={n}':<12} {sps:>10.1f} {lat:>9.2f} {sps / base:>9.2f}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
