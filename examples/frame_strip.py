"""A still of long rollouts: the recorded frames and each checkpoint's prediction at chosen steps.

    python examples/frame_strip.py --out docs/rollout_still.png \
        --checkpoint release1=/path/to/old --checkpoint bundled=bair_world/checkpoints/default

Rows: recorded, then one per checkpoint (2 context frames, then predicted with one prior sample,
seeded like ``training/evaluate.py``: the same latents the evaluation scored); columns: frames
``--steps`` of sequence ``--index`` of ``--split``. Each row is labelled on its left.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from bair_world.checkpoint import default_checkpoint, load_checkpoint
from bair_world.data.batch import collate
from bair_world.data.open import open_dataset
from bair_world.data.default_data import default_data_root
from bair_world.io import atomic_write_bytes
from bair_world.seeding import latent_generators
from bair_world.world_model import WorldModel

N_PAST = 2
LABEL_WIDTH = 80


def strip(frames: torch.Tensor, conds: torch.Tensor, checkpoints: dict[str, Path], steps: list[int], index: int,
          seed: int = 0, scale: int = 2) -> np.ndarray:
    """uint8 RGB image: rows recorded + one per checkpoint, columns ``steps`` (frames (1, T, 3, 64, 64))."""
    rows = {"recorded": frames[0]}
    for name, ckpt in checkpoints.items():
        model, _ = load_checkpoint(ckpt)
        n_future = frames.shape[1] - N_PAST
        pred = WorldModel(model).rollout(frames, conds, N_PAST, n_future, latent_generators(seed, [index], 0))
        rows[name] = torch.cat([frames[0, :N_PAST], pred[0].clamp(0, 1)])  # (T, 3, 64, 64)
    lines = []
    for name, video in rows.items():
        tiles = (video[steps].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)  # (S, 64, 64, 3)
        row = np.concatenate(list(tiles), 1)  # (64, S*64, 3)
        row = cv2.resize(row, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        label = np.full((row.shape[0], LABEL_WIDTH, 3), 255, np.uint8)
        cv2.putText(label, name[:10], (4, row.shape[0] // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        lines.append(np.concatenate([label, row], 1))
    header = np.full((16, lines[0].shape[1], 3), 255, np.uint8)
    for i, t in enumerate(steps):
        cv2.putText(header, f"t={t}", (LABEL_WIDTH + i * 64 * scale + 4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 0, 0), 1)
    return np.concatenate([header, *lines], 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="PNG to write")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=DIR",
                        help="a row per checkpoint (None: the bundled model)")
    parser.add_argument("--data-root", type=Path, default=None, help="BAIR folder (None: the embedded data)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--steps", default="1,5,9,13,17,21,25,29", help="comma-separated frame indices")
    args = parser.parse_args(argv)
    checkpoints = {}
    for item in args.checkpoint or [f"bundled={default_checkpoint()}"]:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_dir():
            parser.error(f"--checkpoint {item!r}: expected NAME=DIR with an existing folder")
        checkpoints[name] = Path(path)
    steps = [int(s) for s in args.steps.split(",")]
    torch.set_num_threads(2)
    dataset = open_dataset(default_data_root(args.data_root, args.split), args.split, seq_len=max(steps) + 1)
    batch = collate([dataset[args.index]])
    image = strip(batch.frames, batch.cond, checkpoints, steps, args.index)
    ok, png = cv2.imencode(".png", image[:, :, ::-1])  # RGB -> BGR
    atomic_write_bytes(args.out, png.tobytes())
    print(f"wrote {args.out}: {len(checkpoints) + 1} rows x {len(steps)} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
