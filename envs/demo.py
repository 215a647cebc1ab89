"""`bair-world demo`: the bundled world model replaying recorded rollouts, scored and filmed.

Makes ``BairWorld-v0`` as a native vector env (one batched model call per step for all episodes),
replays N reference rollouts' own actions and end-effector positions, prints the PSNR of every
predicted frame beside the copy-last-frame baseline, and writes a video whose rows are the
episodes and whose columns are recorded | predicted | |error|. Latents follow
`bair_world.seeding.latent_seed`, so on a data folder the first 10 steps give what
``training/evaluate.py --seed`` reports for the same sequences.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bair_world.cli_errors import CommandError

DEFAULT_OUT = "bair_world_demo.mp4"
#: `bair_world.world_model.PRECISIONS`' names, spelled out so `--help` does not import torch (a test keeps them equal).
PRECISION_CHOICES = ("float32", "bfloat16", "float16")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `bair-world demo`."""
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint directory (default: the bundled bair_world/checkpoints/default)")
    parser.add_argument("--episodes", type=int, default=4, help="reference rollouts replayed side by side (default: 4)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"video file, .mp4 or .gif (default: {DEFAULT_OUT} in the working directory)")
    parser.add_argument("--data-root", default=None,
                        help="replay a BAIR-format folder's sequences (default: the built-in pushing world)")
    parser.add_argument("--split", default="test", help="split of --data-root (default: test)")
    parser.add_argument("--first", type=int, default=0, help="index of the first reference replayed (default: 0)")
    parser.add_argument("--steps", type=int, default=None, help="predicted frames per episode (default: all, 28 for BAIR)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the latent samples (default: 0)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda (default: auto)")
    parser.add_argument("--precision", default="float32", choices=PRECISION_CHOICES,
                        help="model compute dtype: float32 (exact), bfloat16 (CPU/CUDA, faster on CPUs with "
                             "AVX512-BF16), float16 (CUDA) (default: float32)")


def _record(checkpoint: Path) -> str:
    """One line on how the checkpoint was trained (from config.json / training_metrics.json)."""
    from bair_world.checkpoint import read_config

    config = read_config(checkpoint)
    metrics = config.get("metrics") or {}
    parts = [f"epoch {config.get('epoch')}, step {config.get('step')}", f"weights {config.get('dtype', 'float32')}"]
    if isinstance(metrics.get("val_psnr"), (int, float)):
        parts.append(f"validation PSNR {metrics['val_psnr']:.2f} dB")
    if isinstance(metrics.get("baseline_psnr"), (int, float)):
        parts.append(f"copy-last {metrics['baseline_psnr']:.2f} dB")
    return ", ".join(parts)


def format_table(psnr: np.ndarray, baseline: np.ndarray, n_past: int) -> str:
    """Per-step mean PSNR over episodes, model vs copy-last, then the overall means.

    Args:
        psnr, baseline: (N, S) dB per episode and predicted step.
        n_past: context frames (the first predicted frame's index).
    """
    model_c, base_c = psnr.mean(0), baseline.mean(0)  # (S,)
    lines = [f"{'step':>4} {'frame':>5} {'model dB':>9} {'copy-last dB':>13} {'gain':>6}"]
    for i, (m, b) in enumerate(zip(model_c, base_c)):
        lines.append(f"{i + 1:>4} {n_past + i:>5} {m:>9.2f} {b:>13.2f} {m - b:>+6.2f}")
    lines.append(f"{'mean':>4} {'':>5} {psnr.mean():>9.2f} {baseline.mean():>13.2f} {psnr.mean() - baseline.mean():>+6.2f}")
    wins = int((model_c > base_c).sum())
    lines.append(f"whole frame: the model beats copy-last-frame on {wins}/{len(model_c)} steps "
                 f"(mean over {psnr.shape[0]} episode(s); per episode: "
                 + ", ".join(f"{m:.1f}/{b:.1f}" for m, b in zip(psnr.mean(1), baseline.mean(1))) + " dB)")
    return "\n".join(lines)


#: Regions scored by `format_regions`, with what a score below copy-last means there.
REGIONS = {"arm": "the arm blurs or lags where it moves",
           "objects": "objects blur, or pushed ones vanish or stay behind"}


def region_scores(replay, labels: np.ndarray) -> dict[str, tuple[float, float]]:
    """{region: (model dB, copy-last dB)}: PSNR over the region's pixels, mean over steps and episodes.

    Args:
        replay: a `bair_world.envs.replay.Replay`.
        labels: (N, n_past + S, 64, 64) uint8 region labels of the recorded frames (`bair_world.sim.render`).
    """
    import torch

    from bair_world.data.batch import frames_to_float
    from bair_world.metrics import region_psnr
    from bair_world.regions import region_masks

    n_past, steps = replay.n_past, replay.psnr.shape[1]
    recorded = frames_to_float(replay.recorded[:, n_past:n_past + steps])  # (N, S, 64, 64, 3) -> (N, S, 3, 64, 64)
    predicted = frames_to_float(replay.frames[:, n_past:n_past + steps])
    last = frames_to_float(replay.recorded[:, n_past - 1:n_past]).expand_as(recorded)  # (N, 1, ...) -> (N, S, ...)
    masks = region_masks(torch.as_tensor(np.asarray(labels[:, :n_past + steps])), n_past)  # {region: (N, S, 64, 64) bool}
    out = {}
    for name in REGIONS:
        model = region_psnr(predicted, recorded, masks[name])  # (N, S), NaN where the region is empty
        base = region_psnr(last, recorded, masks[name])
        out[name] = (float(torch.nanmean(model)), float(torch.nanmean(base)))
    return out


def format_regions(scores: dict[str, tuple[float, float]]) -> str:
    """The region lines of the summary; says plainly where the model is below copy-last."""
    lines = ["by region (PSNR over its pixels, mean over steps and episodes; copy-last keeps still pixels exact):"]
    for name, (model, base) in scores.items():
        if not (np.isfinite(model) and np.isfinite(base)):
            lines.append(f"  {name:<8} not in these frames")
            continue
        verdict = ("above copy-last" if model > base else
                   f"BELOW copy-last: {REGIONS.get(name, 'the model does worse than doing nothing here')}")
        lines.append(f"  {name:<8} model {model:6.2f} dB   copy-last {base:6.2f} dB   {model - base:+6.2f}  {verdict}")
    return "\n".join(lines)


def _sim_labels(references, indices: list[int], length: int) -> np.ndarray | None:
    """(N, length, 64, 64) region labels of built-in-world references (regenerated: same seed, same
    frames); None for a data folder (real BAIR has no labels)."""
    from bair_world.envs.references import SimReferences
    from bair_world.sim import rollout

    if not isinstance(references, SimReferences):
        return None
    return np.stack([rollout(references.seed_offset + i, references.length, labels=True).labels[:length]
                     for i in indices])


def write_video(path: str | Path, replay, fps: float | None = None, scale: int = 3) -> Path:
    """Rows = episodes; columns = recorded | predicted | |error|, one video frame per time step, at
    ``fps`` (default: `bair_world.sim.config.FRAME_RATE`, the env's render_fps)."""
    from bair_world.sim.config import FRAME_RATE

    fps = FRAME_RATE if fps is None else fps
    from bair_world.video import compose_rollout_frames, write_frames

    rows = []
    for i in range(replay.frames.shape[0]):
        psnr = np.concatenate([np.full(replay.n_past, np.nan), replay.psnr[i]])  # (T,): none for context
        rows.append(compose_rollout_frames(replay.recorded[i], replay.frames[i], n_context=replay.n_past,
                                           psnr=psnr, scale=scale))
    return write_frames(path, np.concatenate(rows, axis=1), fps=fps)  # N x (T, h, w, 3) -> (T, N*h, w, 3)


def run(args: argparse.Namespace) -> int:
    """Replay, print the table, write the video (a missing checkpoint or a bad argument: `CommandError`)."""
    import gymnasium as gym
    import torch

    import bair_world  # noqa: F401  (registers BairWorld-v0)
    from bair_world.envs.replay import replay_references

    start = time.perf_counter()
    if args.episodes < 1 or args.first < 0 or (args.steps is not None and args.steps < 1):
        raise CommandError("--episodes and --steps must be >= 1, --first >= 0")
    if Path(args.out).suffix.lower() not in (".mp4", ".gif"):
        raise CommandError(f"{args.out}: the video must be .mp4 or .gif")
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    try:
        vec = gym.make_vec("BairWorld-v0", num_envs=args.episodes, vectorization_mode="vector_entry_point",
                           checkpoint=args.checkpoint, data_root=args.data_root, split=args.split, device=args.device,
                           precision=args.precision)
    except FileNotFoundError as exc:  # no checkpoint: the message says how to get one
        raise CommandError(str(exc)) from None
    core = vec.unwrapped
    n_refs = len(core.episodes.reference_pool)
    indices = [args.first + i for i in range(args.episodes)]
    if indices[-1] >= n_refs:
        vec.close()
        raise CommandError(f"references {indices[0]}..{indices[-1]} asked, the source holds {n_refs}")
    try:
        replay = replay_references(vec, indices, seed=args.seed, max_steps=args.steps)
    finally:
        vec.close()
    checkpoint = core.episodes.checkpoint
    source = "the built-in pushing world" if args.data_root is None else f"{args.data_root} [{args.split}]"
    print(f"BairWorld-v0 on {checkpoint}\n  trained: {_record(checkpoint)}")
    print(f"replaying {args.episodes} recorded rollout(s) of {source} (indices {indices[0]}..{indices[-1]}) with "
          f"their own actions: {replay.n_past} context frames, {replay.psnr.shape[1]} predicted, latent seed {args.seed}")
    print(format_table(replay.psnr, replay.baseline, replay.n_past))
    labels = _sim_labels(core.episodes.reference_pool, indices, replay.frames.shape[1])
    if labels is not None:
        print(format_regions(region_scores(replay, labels)))
    else:
        print("by region: not available (the source has no region labels; the built-in world has)")
    video = write_video(args.out, replay)  # a full disk or ulimit -f: the probe refuses the file, nothing installed
    print(f"video: {video.resolve()}\n  rows = episodes; columns = recorded | predicted | |error| "
          f"(green = context, red = predicted)")
    print(f"done in {time.perf_counter() - start:.1f} s.\n"
          "next: bair-world evaluate   (the full PSNR/SSIM protocol, into runs/eval-default-test/; its first "
          "10 steps match this replay on the same sequences)\n"
          "      bair-world train --quick && bair-world bundle runs/<name>   (train your own, make it the "
          "default; or pass --checkpoint runs/<name>/best)")
    return 0
