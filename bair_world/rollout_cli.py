"""`bair-world rollout`: predict one recorded sequence with a checkpoint and write the side-by-side
video (`bair_world.video.write_rollout_video`); with ``--actions SOURCE`` (recorded, push, ...), a
counterfactual rollout: true world | model | error, both driven by the same actions from the
sequence's start (`bair_world.counterfactual.rollout`; synthetic data with recorded seeds)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bair_world.counterfactual_sources import SOURCES
from bair_world.sim.config import FRAME_RATE
from bair_world.video import SUFFIXES, write_rollout_video


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `bair-world rollout`."""
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint directory (default: the bundled bair_world/checkpoints/default)")
    parser.add_argument("--out", required=True, help="output file, .mp4 or .gif")
    parser.add_argument("--data-root", default=None,
                        help="BAIR-format folder root (default: the embedded synthetic dataset)")
    parser.add_argument("--split", default="test", help="split to read the sequence from (default: test)")
    parser.add_argument("--index", type=int, default=0, help="sequence index in the sorted split (default: 0)")
    parser.add_argument("--samples", type=int, default=1, help="latent samples to show side by side (default: 1)")
    parser.add_argument("--n-past", "--n_past", type=int, default=None,
                        help="context frames: accepted for the seed's compatibility; must equal the checkpoint's n_past")
    parser.add_argument("--n-future", type=int, default=28, help="predicted frames (default: 28)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the latent samples (default: 0)")
    parser.add_argument("--fps", type=float, default=FRAME_RATE,
                        help=f"frames per second (default: {FRAME_RATE}, BAIR's rate and the env's render_fps)")
    parser.add_argument("--scale", type=int, default=4, help="panel upscaling factor (default: 4)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--actions", default=None, choices=SOURCES,
                        help="counterfactual: drive the true pushing world (started from the sequence's seed) and "
                             "the model with these actions and show true world | model | error (default: replay "
                             "the recorded actions against the recorded frames)")


def predict_rollout(checkpoint, data_root, *, split: str = "test", index: int = 0, samples: int = 1,
                    n_future: int = 28, seed: int = 0, device: str = "auto"):
    """K sampled rollouts of one recorded sequence after the checkpoint's ``n_past`` context frames.

    Returns:
        (recorded (T, 64, 64, 3) uint8, predicted (K, T, 64, 64, 3) uint8) with T = n_past + n_future;
        the first n_past predicted frames are the recorded context.
    """
    import torch

    from bair_world.checkpoint import load_checkpoint
    from bair_world.data.open import open_dataset
    from bair_world.data.batch import cond_of, frames_to_uint8
    from bair_world.devices import resolve_device
    from bair_world.world_model import WorldModel

    if samples < 1 or n_future < 1:
        raise ValueError(f"need samples and n_future >= 1, got {samples} and {n_future}")
    dev = resolve_device(device)
    model, _ = load_checkpoint(checkpoint, dev)
    n_past = model.cfg.n_past
    t_len = n_past + n_future
    dataset = open_dataset(data_root, split, seq_len=t_len)  # DataError if a sequence is shorter
    if not 0 <= index < len(dataset):
        raise IndexError(f"{Path(data_root) / split}: index {index} out of range for {len(dataset)} sequences")
    item = dataset[index]
    frames = item["frames"][:t_len].unsqueeze(0).repeat(samples, 1, 1, 1, 1)  # (K, T, 3, 64, 64)
    conds = cond_of(item["actions"], item["positions"])[:t_len].unsqueeze(0).repeat(samples, 1, 1)  # (K, T, 7)
    generator = torch.Generator(device=dev).manual_seed(seed)
    preds = WorldModel(model, dev).rollout(frames, conds, n_future, generator)  # (K, n_future, 3, 64, 64)
    full = torch.cat([frames[:, :n_past].to(preds.device), preds], dim=1)  # (K, T, 3, 64, 64)
    return frames_to_uint8(frames[0]), frames_to_uint8(full)


def _check_arguments(args: argparse.Namespace) -> None:
    """Everything `bair-world rollout` can check before it loads data or generates any (cheap);
    sets ``args.n_past`` to the checkpoint's.

    Raises:
        ValueError: naming the argument (CheckpointError and DataError, both ValueErrors, name the file).
    """
    from bair_world.checkpoint import check_n_past_option, resolve_checkpoint
    from bair_world.data import DataError
    from bair_world.devices import resolve_device

    if args.checkpoint is None:  # the bundled model, as demo and evaluate default to
        try:
            args.checkpoint = str(resolve_checkpoint(None))
        except FileNotFoundError as e:  # says how to get one
            raise ValueError(str(e)) from None

    if Path(args.out).suffix.lower() not in SUFFIXES:
        raise ValueError(f"--out {args.out}: the video must be one of {', '.join(SUFFIXES)}")
    for name in ("samples", "n_past", "n_future", "scale"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.fps > 0 or args.index < 0:
        raise ValueError(f"--fps must be > 0 and --index >= 0, got {args.fps} and {args.index}")
    args.n_past = check_n_past_option(args.checkpoint, args.n_past)  # the checkpoint is readable; its n_past
    if args.data_root is not None and not Path(args.data_root).is_dir():
        raise DataError(args.data_root, "data root does not exist (expected <split>/ folders inside)")
    resolve_device(args.device)
    if args.actions is not None:
        from bair_world.data.seeds import recorded_seeds

        if args.samples != 1:
            raise ValueError(f"--samples must be 1 with --actions (one counterfactual rollout), got {args.samples}")
        if args.data_root is not None and recorded_seeds(args.data_root, args.split) is None:
            raise DataError(args.data_root, "records no pushing-world seeds (not synthetic data): --actions needs "
                                            "the true world, which starts from a sequence's seed")


def run(args: argparse.Namespace) -> int:
    """`bair-world rollout`: predict one sequence and write the side-by-side video.

    Every argument is checked before any work; a bad one is an error `bair_world.cli_errors` maps to one line.
    """
    from bair_world import metrics

    _check_arguments(args)
    from bair_world.data.default_data import default_data_root

    data_root = default_data_root(args.data_root, args.split)
    if args.actions is None:
        recorded, predicted = predict_rollout(args.checkpoint, data_root, split=args.split, index=args.index,
                                              samples=args.samples, n_future=args.n_future,
                                              seed=args.seed, device=args.device)
    else:
        from bair_world import counterfactual

        recorded, pred = counterfactual.rollout(args.checkpoint, data_root, args.index, args.actions, args.split,
                                                args.n_future, args.seed, args.device)
        predicted = pred[None]  # (1, T, 64, 64, 3)
    out = write_rollout_video(args.out, recorded, predicted, n_context=args.n_past, fps=args.fps,
                              scale=args.scale, reference_title="recorded" if args.actions is None else "true world")
    mean = metrics.psnr(predicted[:, args.n_past:], recorded[None, args.n_past:], channel_axis=-1).mean()
    against = "" if args.actions is None else f" against the true world under {args.actions} actions"
    print(f"wrote {out} ({recorded.shape[0]} frames, {predicted.shape[0]} sample(s), "
          f"mean PSNR of predicted frames{against} {mean:.2f} dB)")
    return 0
