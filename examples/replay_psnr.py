"""Replay a reference rollout's own actions in BairWorld-v0 and print the per-step PSNR curve.

    python examples/replay_psnr.py --checkpoint runs/<name>/best --index 0
    python examples/replay_psnr.py --checkpoint runs/<name>/best --data-root data/bair --split test --video replay.mp4

The copy-last-context-frame baseline is printed beside the model (DESIGN §7): a model that does
not beat it has learned nothing about motion.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from bair_world.data.batch import cond_of
from bair_world.envs import BairWorldEnv
from bair_world.metrics import psnr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="checkpoint directory (None: the bundled one)")
    parser.add_argument("--index", type=int, default=0, help="reference rollout to replay")
    parser.add_argument("--seed", type=int, default=0, help="reset seed (fixes the latent samples)")
    parser.add_argument("--data-root", default=None, help="BAIR folder root (None: the built-in pushing world)")
    parser.add_argument("--split", default="test", help="split of --data-root")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--video", default=None, help="also write recorded | predicted | error as .mp4/.gif")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    try:
        env = BairWorldEnv(checkpoint=args.checkpoint, data_root=args.data_root, split=args.split, device=args.device)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    obs, info = env.reset(seed=args.seed, options={"index": args.index})
    ref, n_past = env.reference, env.n_past
    frames, curve, truncated = [*ref.frames[:n_past]], [], False
    while not truncated:
        obs, _, _, truncated, info = env.step(cond_of(info["action"], info["position"]))
        frames.append(obs)
        curve.append(info["psnr"])
    copy_last = psnr(np.broadcast_to(ref.frames[n_past - 1], ref.frames[n_past:].shape), ref.frames[n_past:],
                     channel_axis=-1)
    print(f"reference {ref.rollout_id} (index {ref.index}), {n_past} context frames, checkpoint {env.episodes.checkpoint}")
    print(f"{'step':>4} {'frame':>5} {'model dB':>9} {'copy-last dB':>13}")
    for i, (m, c) in enumerate(zip(curve, copy_last)):
        print(f"{i + 1:>4} {n_past + i:>5} {m:>9.2f} {c:>13.2f}")
    print(f"mean {'':>5} {np.mean(curve):>9.2f} {np.mean(copy_last):>13.2f}")
    if args.video:
        from bair_world.video import write_rollout_video

        pred = np.stack(frames)[None]  # (T, 64, 64, 3) -> (1, T, 64, 64, 3): one sample
        path = write_rollout_video(args.video, ref.frames, pred, n_context=n_past)
        print(f"wrote {path}")
    env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
