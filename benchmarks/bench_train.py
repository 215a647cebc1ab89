"""Training throughput and peak memory of the training presets (tiny, cpu, seed).

    python benchmarks/bench_train.py                                # CPU, 1 thread, every preset
    python benchmarks/bench_train.py --device cuda --amp bf16       # on a GPU
    python benchmarks/bench_train.py --presets seed --iters 3 --threads 2

One iteration is what `training.engine` does per optimiser step: the `SequenceLoss` forward over
the preset's training window (n_past + n_future frames, teacher forcing on, posterior latents),
backward, gradient clipping and an Adam step, at the preset's batch size (by default ``seed``
gets one timed iteration and no warm-up: 2-3 minutes on one CPU thread). Inputs are random
tensors of the right shape made once (the compute does not depend on the pixel values), so the
table measures the model, not data loading. Each preset runs in a fresh subprocess so its peak
memory is its own: on CPU the peak resident set size (``ru_maxrss``, whole process: Python, torch,
the model, activations) and its growth over the process before the model is built; on CUDA
``torch.cuda.max_memory_allocated`` over the timed iterations. Warm-up iterations are not timed.

Measured on the development machine's 2-core CPU, torch 2.13 (CPU build), torch threads 1, shared
with a background ``train.py`` run and other jobs (load average ~4-6, so absolute times are
pessimistic and noisy). tiny and cpu: ``python benchmarks/bench_train.py --presets tiny cpu``;
seed: ``python benchmarks/bench_train.py --presets seed --iters 2 --warmup 1`` (an earlier run,
under heavier load; tiny and cpu in that run took 0.341 and 2.440 s/iter, 2.4-4x slower)::

    preset  backbone   params  batch  seq warm  iters  s/iter   seq/s  peak RSS MiB  growth MiB
    tiny    dcgan        0.8M      4    5    1     10   0.080    50.3           363         138
    cpu     dcgan        3.0M     16    8    1      5   1.026    15.6           658         433
    seed    vgg         22.2M     24   12    1      2 140.548     0.2          8751        8526

The seed recipe (VGG-64 at batch 24, 12-frame windows) costs ~60-140x the cpu preset per step
and ~8.5 GiB of activations for backpropagation through time on CPU: it is a GPU recipe.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

PRESET_ITERS = {"tiny": 10, "cpu": 5, "seed": 1}
PRESET_WARMUP = {"tiny": 1, "cpu": 1, "seed": 0}  # seed: minutes per step on CPU, warm-up is noise


def _measure(name: str, device: str, iters: int, warmup: int, threads: int, batch_size: int | None,
             amp: str) -> dict:
    """Time ``iters`` training iterations (after ``warmup`` untimed ones) of preset ``name`` in this
    process (call it in a fresh one: the peak RSS is the process's)."""
    from bair_world.training import presets
    from bair_world.training.loop import SequenceLoss

    torch.set_num_threads(threads)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    cfg = presets.preset(name)
    if batch_size is not None:
        cfg = cfg.replace(batch_size=batch_size)
    dev = torch.device(device)
    torch.manual_seed(0)
    from bair_world.models import SVG

    model = SVG(cfg.model).to(dev)
    if dev.type == "cuda" and cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    module = SequenceLoss(model, cfg.model.n_past, cfg.detach_feedback).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    b, t = cfg.batch_size, cfg.seq_len
    frames = torch.rand(b, t, 3, 64, 64, device=dev)  # (B, T, 3, 64, 64)
    conds = torch.randn(b, t, 7, device=dev)  # (B, T, 7)
    teacher = torch.ones(t, dtype=torch.bool, device=dev)
    beta = torch.tensor(cfg.max_beta, device=dev)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)

    def iteration() -> None:
        with torch.autocast("cuda", dtype=dtype, enabled=dev.type == "cuda" and dtype is not None):
            loss, _, _ = module(frames, conds, beta, teacher)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):  # allocator, Adam state, kernels
        iteration()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    start = time.perf_counter()
    for _ in range(iters):
        iteration()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elapsed = time.perf_counter() - start
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB
    return {
        "preset": name, "backbone": cfg.model.backbone, "params_m": model.parameter_count() / 1e6,
        "batch": b, "seq_len": t, "iters": iters, "warmup": warmup, "threads": threads, "device": str(dev),
        "s_per_iter": elapsed / iters, "seq_per_s": b * iters / elapsed,
        "peak_rss_mib": peak_rss, "rss_growth_mib": peak_rss - rss_before,
        "cuda_peak_mib": torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None,
    }


def _table(rows: list[dict]) -> str:
    cuda = any(r["cuda_peak_mib"] is not None for r in rows)
    head = f"{'preset':<8}{'backbone':<10}{'params':>7}{'batch':>7}{'seq':>5}{'warm':>5}{'iters':>7}{'s/iter':>8}{'seq/s':>8}"
    head += f"{'peak RSS MiB':>14}{'growth MiB':>12}" + (f"{'CUDA peak MiB':>15}" if cuda else "")
    lines = [head]
    for r in rows:
        line = (f"{r['preset']:<8}{r['backbone']:<10}{r['params_m']:>6.1f}M{r['batch']:>7}{r['seq_len']:>5}"
                f"{r['warmup']:>5}{r['iters']:>7}{r['s_per_iter']:>8.3f}{r['seq_per_s']:>8.1f}"
                f"{r['peak_rss_mib']:>14.0f}{r['rss_growth_mib']:>12.0f}")
        if cuda:
            line += f"{r['cuda_peak_mib']:>15.0f}"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESET_ITERS), choices=list(PRESET_ITERS))
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    parser.add_argument("--iters", type=int, default=None,
                        help=f"timed iterations per preset (default: {PRESET_ITERS})")
    parser.add_argument("--warmup", type=int, default=None,
                        help=f"untimed iterations before timing (default: {PRESET_WARMUP})")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--batch-size", type=int, default=None, help="override every preset's batch size")
    parser.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none", help="autocast on CUDA")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # one preset, in a subprocess
    args = parser.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.iters is not None and args.iters < 1:
        parser.error("--iters must be >= 1")
    if args.warmup is not None and args.warmup < 0:
        parser.error("--warmup must be >= 0")
    if args.worker is not None:
        iters = args.iters or PRESET_ITERS[args.worker]
        warmup = PRESET_WARMUP[args.worker] if args.warmup is None else args.warmup
        print(json.dumps(_measure(args.worker, device, iters, warmup, args.threads, args.batch_size, args.amp)))
        return 0
    print(f"torch {torch.__version__}, device {device}, torch threads {args.threads}, "
          "random-tensor batches", flush=True)
    rows = []
    for name in args.presets:
        cmd = [sys.executable, __file__, "--worker", name, "--device", device, "--threads", str(args.threads),
               "--amp", args.amp]
        if args.iters is not None:
            cmd += ["--iters", str(args.iters)]
        if args.warmup is not None:
            cmd += ["--warmup", str(args.warmup)]
        if args.batch_size is not None:
            cmd += ["--batch-size", str(args.batch_size)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{name}: failed\n{done.stderr}", file=sys.stderr)
            return 1
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"  {name}: {rows[-1]['s_per_iter']:.3f} s/iter", flush=True)
    print(_table(rows))
    if args.json:
        out = Path(args.json)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(rows, indent=2))
        os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
