"""Training throughput and peak memory of the training presets (tiny, cpu, seed).

    python benchmarks/bench_train.py                                # CPU, 1 thread, every preset
    python benchmarks/bench_train.py --device cuda --amp bf16       # on a GPU
    python benchmarks/bench_train.py --presets seed --iters 3 --threads 2

One iteration is what `training/train.py` does per optimiser step: the `SequenceLoss` forward over
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
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bair_world.io import atomic_write_bytes

PRESET_ITERS = {"tiny": 10, "cpu": 5, "seed": 1}
PRESET_WARMUP = {"tiny": 1, "cpu": 1, "seed": 0}  # seed: minutes per step on CPU, warm-up is noise


IMPLS = ("ours", "ours-bf16", "reference", "per-step")
"""ours: `SequenceLoss` (each frame encoded once per sequence, batched over time; runs of steps
decoded in one call). reference: the computation order of Denton & Fergus's SVG training loop
(`train_svg_lp.py`): each frame encoded once in its own batch-B call, one decoder call per step.
ours-bf16: ours under bfloat16 autocast (``train.py --amp bf16``, also on CPU).
per-step: ``model.step`` per time step with ``x_next``, which encodes every frame twice (as x_t
and as x_{t+1}): this project's loop before the change."""


def _reference_loss(model, frames, conds, beta, n_past):
    """Denton & Fergus's order of work with this project's modules: the same sizes and result."""
    b, t_len = frames.shape[:2]
    codes = [model.encoder(frames[:, i]) for i in range(t_len)]  # T encoder calls of batch B
    state = model.init_state(b, frames.device)
    mse = kl = 0.0
    for i in range(1, t_len):
        adv = model.advance(state, codes[i - 1][0], codes[i - 1][1], conds[:, i - 1], codes[i][0],
                            x_prev=frames[:, i - 1])
        state = adv.state
        pred = model.decode(adv.h_pred, state.skips, frames[:, i - 1], conds[:, i - 1], state.context)  # one decoder call per step
        mse, kl = mse + F.mse_loss(pred, frames[:, i]), kl + adv.kl.mean()
    return (mse + beta * kl) / (t_len - 1)


def _per_step_loss(model, frames, conds, beta, n_past):
    """``model.step`` per time step, encoding x_t and x_{t+1} each step (teacher forcing)."""
    state, mse, kl = model.init_state(frames.shape[0], frames.device), 0.0, 0.0
    for i in range(1, frames.shape[1]):
        out = model.step(state, frames[:, i - 1], conds[:, i - 1], x_next=frames[:, i])
        state = out.state
        mse, kl = mse + F.mse_loss(out.frame, frames[:, i]), kl + out.kl.mean()
    return (mse + beta * kl) / (frames.shape[1] - 1)


def _measure(name: str, device: str, iters: int, warmup: int, threads: int, batch_size: int | None,
             amp: str, impls: list[str]) -> list[dict]:
    """Time ``iters`` training iterations (after ``warmup`` untimed ones) of preset ``name`` for each
    implementation in ``impls``, round-robin (one iteration of each in turn; the fastest
    iteration counts, as the ratio between implementations is what matters on a noisy machine);
    call it in a fresh process: the peak RSS is the process's."""
    from bair_world.training import presets
    from bair_world.training.loss import SequenceLoss

    torch.set_num_threads(threads)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    cfg = presets.training_preset(name)
    if batch_size is not None:
        cfg = cfg.replace(batch_size=batch_size)
    dev = torch.device(device)
    torch.manual_seed(0)
    from bair_world.models import SVG

    model = SVG(cfg.model).to(dev).train()
    if dev.type == "cuda" and cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    ours = SequenceLoss(model, cfg.model.n_past, cfg.detach_feedback)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    b, t = cfg.batch_size, cfg.seq_len
    frames = torch.rand(b, t, 3, 64, 64, device=dev)  # (B, T, 3, 64, 64)
    conds = torch.randn(b, t, 7, device=dev)  # (B, T, 7)
    teacher = torch.ones(t, dtype=torch.bool)
    beta = torch.tensor(cfg.max_beta, device=dev)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    losses = {"ours": lambda: ours(frames, conds, beta, teacher)[0],
              "reference": lambda: _reference_loss(model, frames, conds, beta, cfg.model.n_past),
              "per-step": lambda: _per_step_loss(model, frames, conds, beta, cfg.model.n_past)}

    losses["ours-bf16"] = losses["ours"]

    def iteration(impl: str) -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        start = time.perf_counter()
        cast = torch.bfloat16 if impl == "ours-bf16" else dtype
        with torch.autocast(dev.type, dtype=cast or torch.bfloat16,
                            enabled=cast is torch.bfloat16 or (dev.type == "cuda" and cast is not None)):
            loss = losses[impl]()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter() - start

    for _ in range(warmup):  # allocator, Adam state, kernels
        for impl in impls:
            iteration(impl)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times = {impl: [] for impl in impls}
    for _ in range(iters):
        for impl in impls:
            times[impl].append(iteration(impl))
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB
    rows = []
    for impl in impls:
        best = min(times[impl])
        rows.append({
            "preset": name, "impl": impl, "backbone": cfg.model.backbone, "params_m": model.parameter_count() / 1e6,
            "batch": b, "seq_len": t, "iters": iters, "warmup": warmup, "threads": threads, "device": str(dev),
            "s_per_iter": best, "mean_s_per_iter": sum(times[impl]) / iters, "seq_per_s": b / best,
            "speedup_vs_reference": (min(times["reference"]) / best) if "reference" in times else None,
            "peak_rss_mib": peak_rss, "rss_growth_mib": peak_rss - rss_before,
            "cuda_peak_mib": torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None,
        })
    return rows


def _table(rows: list[dict]) -> str:
    cuda = any(r["cuda_peak_mib"] is not None for r in rows)
    head = (f"{'preset':<8}{'impl':<11}{'backbone':<10}{'params':>7}{'batch':>7}{'seq':>5}{'warm':>5}{'iters':>7}"
            f"{'s/iter':>8}{'seq/s':>8}{'vs ref':>8}")
    head += f"{'peak RSS MiB':>14}{'growth MiB':>12}" + (f"{'CUDA peak MiB':>15}" if cuda else "")
    lines = [head]
    for r in rows:
        ratio = f"{r['speedup_vs_reference']:.2f}x" if r["speedup_vs_reference"] else "-"
        line = (f"{r['preset']:<8}{r['impl']:<11}{r['backbone']:<10}{r['params_m']:>6.1f}M{r['batch']:>7}"
                f"{r['seq_len']:>5}{r['warmup']:>5}{r['iters']:>7}{r['s_per_iter']:>8.3f}{r['seq_per_s']:>8.1f}{ratio:>8}"
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
    parser.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none", help="autocast: bf16 on CUDA or CPU, fp16 on CUDA")
    parser.add_argument("--impls", default=",".join(IMPLS),
                        help=f"comma-separated implementations to time round-robin: {', '.join(IMPLS)}")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # one preset, in a subprocess
    args = parser.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.iters is not None and args.iters < 1:
        parser.error("--iters must be >= 1")
    if args.warmup is not None and args.warmup < 0:
        parser.error("--warmup must be >= 0")
    impls = [x for x in args.impls.split(",") if x]
    if not impls or set(impls) - set(IMPLS):
        parser.error(f"--impls must name some of {', '.join(IMPLS)}, got {args.impls!r}")
    if args.worker is not None:
        iters = args.iters or PRESET_ITERS[args.worker]
        warmup = PRESET_WARMUP[args.worker] if args.warmup is None else args.warmup
        print(json.dumps(_measure(args.worker, device, iters, warmup, args.threads, args.batch_size, args.amp,
                                  impls)))
        return 0
    print(f"torch {torch.__version__}, device {device}, torch threads {args.threads}, "
          "random-tensor batches", flush=True)
    try:
        table = rows(args.presets, device, threads=args.threads, amp=args.amp, impls=impls, iters=args.iters,
                     warmup=args.warmup, batch_size=args.batch_size)
    except RuntimeError as e:  # a worker failed: its name and stderr
        print(e, file=sys.stderr)
        return 1
    print(_table(table))
    if args.json:
        atomic_write_bytes(Path(args.json), json.dumps(table, indent=2).encode())
    return 0


def rows(presets: list[str], device: str, *, threads: int = 1, amp: str = "none", impls=IMPLS,
         iters: int | None = None, warmup: int | None = None, batch_size: int | None = None) -> list[dict]:
    """The table rows (see `_measure`) of each preset, measured in its own subprocess (a clean
    allocator and peak RSS per preset); prints one progress line per preset.

    Raises:
        RuntimeError: ``<preset>: failed`` and the worker's stderr.
    """
    out: list[dict] = []
    for name in presets:
        cmd = [sys.executable, __file__, "--worker", name, "--device", device, "--threads", str(threads),
               "--amp", amp, "--impls", ",".join(impls)]
        if iters is not None:
            cmd += ["--iters", str(iters)]
        if warmup is not None:
            cmd += ["--warmup", str(warmup)]
        if batch_size is not None:
            cmd += ["--batch-size", str(batch_size)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{name}: failed\n{done.stderr}")
        out += json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  {name}: " + ", ".join(f"{r['impl']} {r['s_per_iter']:.3f} s/iter" for r in out
                                        if r["preset"] == name), flush=True)
    return out

if __name__ == "__main__":
    sys.exit(main())
