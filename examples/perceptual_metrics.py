"""LPIPS and FVD of a checkpoint's rollouts against the recorded videos, beside copy-last (optional metrics).

    BAIR_WORLD_WEIGHTS=~/weights python examples/perceptual_metrics.py --max-sequences 256

Each sequence of the split is predicted as ``bair-world evaluate`` does it (the checkpoint's context
frames, actions and positions given, one prior sample seeded by `bair_world.seeding.latent_seed`),
then: LPIPS per predicted frame, averaged; FVD between the recorded and the predicted videos (context
+ predicted frames, 16 in all by default: BAIR's usual 2 + 14, frames resized to 224). The weights are
yours (`bair_world.perceptual`: what the files are, where they come from); without them this prints
how to get them and exits 2. FVD wants hundreds of videos (256 is BAIR's usual); with few it is biased
upwards.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from bair_world import perceptual


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="checkpoint directory (None: the bundled one)")
    parser.add_argument("--data-root", default=None, help="BAIR folder root (None: the embedded synthetic data)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-sequences", type=int, default=256)
    parser.add_argument("--frames", type=int, default=16, help="frames per video: context + predicted")
    parser.add_argument("--seed", type=int, default=0, help="latent seed (evaluate's rule)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lpips-backbone", type=Path, default=None, help=f"None: ${perceptual.WEIGHTS_ENV}/"
                        f"{perceptual.LPIPS_BACKBONE}")
    parser.add_argument("--lpips-heads", type=Path, default=None,
                        help=f"None: ${perceptual.WEIGHTS_ENV}/{perceptual.LPIPS_HEADS}")
    parser.add_argument("--i3d", type=Path, default=None, help=f"None: ${perceptual.WEIGHTS_ENV}/{perceptual.I3D_WEIGHTS}")
    parser.add_argument("--fvd-size", type=int, default=224, help="frame size fed to I3D (FVD: 224)")
    args = parser.parse_args(argv)

    from bair_world.checkpoint import context_frames, load_checkpoint, resolve_checkpoint
    from bair_world.data.batch import cond_of
    from bair_world.data.open import open_dataset
    from bair_world.data.default_data import default_data_root
    from bair_world.seeding import latent_generators
    from bair_world.world_model import WorldModel

    try:  # the weights before any work
        lpips = perceptual.LPIPS.from_weights(args.lpips_backbone, args.lpips_heads).to(args.device)
        fvd = perceptual.FVD.from_weights(args.i3d, device=args.device, size=args.fvd_size)
        checkpoint = resolve_checkpoint(args.checkpoint)
        n_past = context_frames(checkpoint)
    except (perceptual.WeightsMissing, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.frames <= n_past:
        print(f"error: --frames must exceed the checkpoint's {n_past} context frames", file=sys.stderr)
        return 2
    model, _ = load_checkpoint(checkpoint, args.device)
    world = WorldModel(model, torch.device(args.device))
    dataset = open_dataset(default_data_root(args.data_root, args.split), args.split, seq_len=args.frames)
    n = min(args.max_sequences, len(dataset))
    recorded, predicted = [], []
    for start in range(0, n, args.batch_size):
        items = [dataset[i] for i in range(start, min(n, start + args.batch_size))]
        frames = torch.stack([it["frames"][:args.frames] for it in items])  # (B, T, 3, 64, 64)
        conds = torch.stack([cond_of(it["actions"], it["positions"])[:args.frames] for it in items])  # (B, T, 7)
        with torch.no_grad():
            preds = world.rollout(frames, conds, args.frames - n_past,
                                  latent_generators(args.seed, range(start, start + len(items))))
        recorded.append(frames)
        predicted.append(torch.cat([frames[:, :n_past], preds.cpu().float()], 1))  # context + predicted
    recorded, predicted = torch.cat(recorded), torch.cat(predicted)  # (N, T, 3, 64, 64)
    copy_last = recorded[:, n_past - 1:n_past].expand_as(recorded).clone()
    copy_last[:, :n_past] = recorded[:, :n_past]
    print(f"{checkpoint} on {n} sequence(s) of {args.split}, {n_past} context + {args.frames - n_past} predicted frames; "
          f"weights SHA-256: LPIPS {lpips.sha256['backbone'][:12]}/{lpips.sha256['heads'][:12]}, I3D {fvd.sha256[:12]}")
    print(f"{'':<16}{'LPIPS':>8}{'FVD':>10}")
    for name, video in (("model", predicted), ("copy-last", copy_last)):
        score = float(lpips(video[:, n_past:], recorded[:, n_past:]).mean())
        print(f"{name:<16}{score:>8.4f}{fvd(recorded, video):>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
