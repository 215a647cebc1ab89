"""Frames per second of the synthetic pushing world on 1 and 2 processes (in memory and written to disk).

    python benchmarks/bench_synth.py [--sequences 64]

Prints a table. `cpu frames/s/proc` divides by CPU time, so it stays meaningful on a busy machine;
`wall frames/s` is what a user waits for. Also prints the motion statistics and a per-frame cost split.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time

import numpy as np

from bair_world.data.synthetic import write_dataset
from bair_world.sim import MotionStats, PushWorld, motion_stats, rollout, sequence_motion

LENGTH = 30


def _timed_rollouts(seeds: list[int]) -> tuple[float, list[tuple[float, float]]]:
    start = time.process_time()
    motion = []
    for s in seeds:
        r = rollout(s, LENGTH)
        motion.append(sequence_motion(r.frames, r.object_pixels))
    return time.process_time() - start, motion


def in_memory(n: int, procs: int) -> tuple[float, float, list]:
    """(wall seconds, total CPU seconds, motion) for n sequences split over procs processes."""
    chunks = [list(range(i, n, procs)) for i in range(procs)]
    start = time.perf_counter()
    if procs == 1:
        results = [_timed_rollouts(chunks[0])]
    else:
        with multiprocessing.get_context().Pool(procs) as pool:
            results = pool.map(_timed_rollouts, chunks)
    wall = time.perf_counter() - start
    return wall, sum(r[0] for r in results), [m for r in results for m in r[1]]


def cost_split(n_frames: int = 300) -> tuple[float, float]:
    """Mean milliseconds per frame for physics and for rendering (one process)."""
    world = PushWorld(0)
    rng = np.random.default_rng(0)
    physics = render = 0.0
    for _ in range(n_frames):
        pos = world.position
        new = np.clip(pos + np.r_[rng.normal(0, 0.03, 2), 0.0], [0.4, -0.3, 0.2], [0.8, 0.2, 0.3])
        t0 = time.process_time()
        world.physics.advance(pos, new)
        t1 = time.process_time()
        world.renderer.draw(world.physics.object_poses(), new, 0.0)
        t2 = time.process_time()
        world._position = new
        physics, render = physics + t1 - t0, render + t2 - t1
    return physics / n_frames * 1e3, render / n_frames * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=64, help="sequences per measurement")
    args = parser.parse_args(argv)
    if args.sequences < 1:
        parser.error(f"--sequences must be >= 1, got {args.sequences}")
    n = args.sequences
    throughput, per_frame, motion = rows(n)
    print(f"{'mode':<10} {'procs':>5} {'frames':>7} {'wall s':>7} {'wall frames/s':>14} {'cpu frames/s/proc':>18}")
    for r in throughput:
        cpu = "-" if r["cpu_frames_per_s_proc"] is None else f"{r['cpu_frames_per_s_proc']:.0f}"
        print(f"{r['mode']:<10} {r['procs']:>5} {r['frames']:>7} {r['wall_s']:>7.2f} {r['frames_per_s']:>14.0f} "
              f"{cpu:>18}")
    print(f"\nper frame (1 process, CPU time): physics {per_frame['physics_ms']:.3f} ms, "
          f"rendering {per_frame['render_ms']:.3f} ms")
    print(f"motion: {motion}")
    return 0


def rows(n: int) -> tuple[list[dict], dict, MotionStats]:
    """Measure ``n`` sequences: throughput rows ({mode: memory | to disk, procs, frames, wall_s,
    frames_per_s, cpu_frames_per_s_proc (None to disk)}), the per-frame cost split ({physics_ms,
    render_ms}) and the motion statistics of the in-memory rollouts."""
    frames = n * LENGTH
    out, motion = [], []
    for procs in (1, 2):
        wall, cpu, motion = in_memory(n, procs)
        out.append({"mode": "memory", "procs": procs, "frames": frames, "wall_s": wall, "frames_per_s": frames / wall,
                    "cpu_frames_per_s_proc": frames / cpu})
    for procs in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            write_dataset(tmp, {"train": n}, workers=procs, progress=False)
            wall = time.perf_counter() - start
        out.append({"mode": "to disk", "procs": procs, "frames": frames, "wall_s": wall, "frames_per_s": frames / wall,
                    "cpu_frames_per_s_proc": None})
    phys, rend = cost_split()
    return out, {"physics_ms": phys, "render_ms": rend}, motion_stats(motion)

if __name__ == "__main__":
    raise SystemExit(main())
