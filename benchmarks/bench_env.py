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
5 round-robin chunks x 256 steps (full table and the roofline bound on the ratio: docs/benchmarks.md):

    precision  mode      env           steps/s  ms/call  x single
    float32    eager     single          167.1     5.77      1.00
    float32    eager     vector N=64     731.2    89.22      4.38
    float32    compiled  single          309.1     3.38      1.00
    bfloat16   eager     vector N=64    1477.9    44.28      6.34
    bfloat16   compiled  single          424.7     2.27      1.00
    bfloat16   compiled  vector N=64    1575.7    44.24      3.71
    fastest vector N=64 / fastest single: 1575.7 / 424.7 = 3.71x (a second run: 4.01x)

"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bair_world.data.batch import cond_of
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


class _Row:
    """One table row: an env replaying reference actions, timed in chunks.

    Rows are built (and warmed up) first, then timed round-robin, one chunk per row per round, so
    a slow spell of the machine hits every row alike instead of one row's whole measurement.
    """

    def __init__(self, label: str, kwargs: dict, n: int | None, steps: int):
        self.label, self.n = label, n
        self.env = BairWorldEnv(**kwargs) if n is None else BairWorldVectorEnv(n, **kwargs)
        _, self.info = self.env.reset(seed=0)
        self.calls = steps if n is None else max(3, steps // n)
        self.rates: list[float] = []
        self.latencies: list[float] = []
        for _ in range(8 if n is None else 2):  # warm-up: allocator, cuDNN autotune, compile=True's compilation
            self._call()

    def _call(self) -> None:
        if self.n is None:
            _, _, _, truncated, self.info = self.env.step(cond_of(self.info["action"], self.info["position"]))
            if truncated:  # the reset (a context feed every 28 steps) is part of the cost
                _, self.info = self.env.reset()
        else:
            _, _, _, _, self.info = self.env.step(
                cond_of(self.info["action"], self.info["position"]))
        _sync(self.env.episodes.device)

    def chunk(self) -> None:
        """Time one chunk of calls; keeps its env steps/s and the per-call latencies."""
        start = time.perf_counter()
        for _ in range(self.calls):
            t0 = time.perf_counter()
            self._call()
            self.latencies.append(time.perf_counter() - t0)
        self.rates.append(self.calls * (self.n or 1) / (time.perf_counter() - start))

    @property
    def best_rate(self) -> float:
        """Env steps/s of the fastest chunk: other load on the cores only ever slows a chunk down."""
        return max(self.rates)

    @property
    def latency_ms(self) -> float:
        return 1e3 * float(np.median(self.latencies))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="checkpoint directory (else --preset)")
    parser.add_argument("--preset", default="cpu", help="random-weight model preset when no --checkpoint")
    parser.add_argument("--steps", type=int, default=256, help="env steps per timed run")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed rounds (one chunk per row each, round-robin); a row's fastest chunk counts")
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
    print(f"checkpoint: {args.checkpoint or 'random ' + args.preset + ' preset'}; torch threads "
          f"{torch.get_num_threads()}{'' if args.threads else ' (default)'}; best of {args.repeats} round-robin chunks of {args.steps} env steps per row")
    sizes = [int(s) for s in args.sizes.split(",")]
    table = rows(args.checkpoint, args.preset, steps=args.steps, repeats=args.repeats, sizes=sizes,
                 precisions=precisions, modes=modes)
    print(format_table(table, max(sizes)))
    return 0


def rows(checkpoint: str | Path | None, preset_name: str, *, steps: int, repeats: int, sizes: list[int],
         precisions: list[str], modes: list[str]) -> list[dict]:
    """One dict per (device, precision, mode, env): ``steps_s`` (fastest chunk), ``ms_call`` (median
    latency), ``x_single`` (against the single env of its group); a precision a device cannot run is
    one dict with ``skipped`` (the reason) instead."""
    tmp = None
    if checkpoint is None:
        from bair_world.checkpoint import save_checkpoint
        from bair_world.models import SVG, model_preset

        tmp = tempfile.TemporaryDirectory()
        checkpoint = save_checkpoint(Path(tmp.name) / preset_name, SVG(model_preset(preset_name)), step=0, epoch=0)
    pool = _Pool(SimReferences(), max(sizes) + 8)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    skipped: list[dict] = []
    timed: list[tuple[dict, _Row]] = []
    for device in devices:
        for precision in precisions:
            try:
                check_precision(precision, device)
            except ValueError as exc:
                skipped.append({"device": device, "precision": precision, "skipped": str(exc)})
                continue
            for mode in modes:
                kwargs = {"checkpoint": checkpoint, "device": device, "references": pool, "precision": precision,
                          "compile": mode == "compiled"}
                group = {"device": device, "precision": precision, "mode": mode}
                timed.append((group, _Row("single", kwargs, None, steps)))
                timed += [(group, _Row(f"vector N={n}", kwargs, n, steps)) for n in sizes]
    for _ in range(repeats):
        for _, row in timed:
            row.chunk()
    singles = {id(group): row.best_rate for group, row in timed if row.n is None}
    out = skipped + [{**group, "env": row.label, "n": row.n, "steps_s": row.best_rate, "ms_call": row.latency_ms,
                      "x_single": row.best_rate / singles[id(group)]} for group, row in timed]
    if tmp is not None:
        tmp.cleanup()
    return out


def format_table(table: list[dict], largest: int) -> str:
    """The skip notes, the table and, per device, the fastest vector env at N = ``largest`` against
    the fastest single env."""
    lines = [f"{r['device']:<6} {r['precision']:<9} skipped: {r['skipped']}" for r in table if "skipped" in r]
    timed = [r for r in table if "skipped" not in r]
    lines.append(f"{'device':<6} {'precision':<9} {'mode':<8} {'env':<12} {'steps/s':>10} {'ms/call':>9} {'x single':>9}")
    lines += [f"{r['device']:<6} {r['precision']:<9} {r['mode']:<8} {r['env']:<12} {r['steps_s']:>10.1f} "
              f"{r['ms_call']:>9.2f} {r['x_single']:>9.2f}" for r in timed]
    for device in dict.fromkeys(r["device"] for r in timed):
        mine = [r for r in timed if r["device"] == device]
        single = max((r for r in mine if r["n"] is None), key=lambda r: r["steps_s"], default=None)
        vector = max((r for r in mine if r["n"] == largest), key=lambda r: r["steps_s"], default=None)
        if single and vector:
            name = lambda r: f"{r['precision']} {r['mode']}"  # noqa: E731
            lines.append(f"{device}: fastest vector env N={largest} ({name(vector)}) {vector['steps_s']:.1f} "
                         f"steps/s = "
                         f"{vector['steps_s'] / single['steps_s']:.2f}x the fastest single env ({name(single)}, "
                         f"{single['steps_s']:.1f} steps/s)")
    return "\n".join(lines)

if __name__ == "__main__":
    raise SystemExit(main())
