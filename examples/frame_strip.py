"""A still of long rollouts: the recorded frames and each checkpoint's prediction at chosen steps.

    python examples/frame_strip.py --out docs/rollout_still.png \
        --checkpoint release1=/path/to/old --checkpoint bundled=bair_world/checkpoints/default
    python examples/frame_strip.py --out docs/push_strip.png --actions push   # under new actions

Rows: recorded, then one per checkpoint (2 context frames, then predicted with one prior sample,
seeded like ``training/evaluate.py``: the same latents the evaluation scored); columns: frames
``--steps`` of sequence ``--index`` of ``--split``. Each row is labelled on its left.

With ``--actions push|random|recorded`` the strip is counterfactual (`bair_world.counterfactual`):
the true pushing world, started from the sequence's seed, and each checkpoint driven by the same
actions (a scripted push through the nearest objects, random ones, or the recorded ones), then the
absolute error of the last checkpoint against the true world.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from bair_world.checkpoint import default_checkpoint, load_checkpoint
from bair_world.data.batch import collate, frames_to_uint8
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
    rows = {"recorded": frames_to_uint8(frames[0])}
    for name, ckpt in checkpoints.items():
        model, _ = load_checkpoint(ckpt)
        n_future = frames.shape[1] - N_PAST
        pred = WorldModel(model).rollout(frames, conds, n_future, latent_generators(seed, [index], 0))
        rows[name] = frames_to_uint8(torch.cat([frames[0, :N_PAST], pred[0]]))  # (T, 64, 64, 3)
    return layout(rows, steps, scale)


def counterfactual_strip(references, split: str, checkpoints: dict[str, Path], steps: list[int], index: int,
                         source: str, scale: int = 2) -> np.ndarray:
    """uint8 RGB image: rows true world + one per checkpoint under the same ``source`` actions + the last
    checkpoint's absolute error (`bair_world.counterfactual.rollout`, seed 0), columns ``steps``."""
    from bair_world import counterfactual

    rows: dict[str, np.ndarray] = {}
    for name, ckpt in checkpoints.items():
        true, pred = counterfactual.rollout(ckpt, references, index=index, source=source, split=split,
                                            n_future=max(steps) + 1 - N_PAST)
        rows.setdefault("true world", true)
        rows[name] = pred  # (T, 64, 64, 3) uint8
    rows["error"] = np.abs(rows[name].astype(np.int16) - true.astype(np.int16)).astype(np.uint8)
    return layout(rows, steps, scale)


def layout(rows: dict[str, np.ndarray], steps: list[int], scale: int) -> np.ndarray:
    """The labelled grid: one row per entry of ``rows`` ((T, 64, 64, 3) uint8 each), a column per step."""
    lines = []
    for name, video in rows.items():
        row = np.concatenate(list(video[steps]), 1)  # (64, S*64, 3)
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
    parser.add_argument("--actions", default=None, choices=("recorded", "random", "push"),
                        help="counterfactual strip: the true pushing world and the models under these actions")
    args = parser.parse_args(argv)
    checkpoints = {}
    for item in args.checkpoint or [f"bundled={default_checkpoint()}"]:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_dir():
            parser.error(f"--checkpoint {item!r}: expected NAME=DIR with an existing folder")
        checkpoints[name] = Path(path)
    steps = [int(s) for s in args.steps.split(",")]
    if not steps or min(steps) < 0 or max(steps) > 29:
        parser.error(f"--steps {args.steps!r}: frame indices must lie in 0..29")
    torch.set_num_threads(2)
    if args.actions is not None:
        references = default_data_root(args.data_root, args.split)
        image = counterfactual_strip(references, args.split, checkpoints, steps, args.index, args.actions)
        return write_png(args.out, image, len(checkpoints) + 2, len(steps))
    dataset = open_dataset(default_data_root(args.data_root, args.split), args.split, seq_len=max(steps) + 1)
    batch = collate([dataset[args.index]])
    image = strip(batch.frames, batch.cond, checkpoints, steps, args.index)
    return write_png(args.out, image, len(checkpoints) + 1, len(steps))


def write_png(path: Path, image: np.ndarray, rows: int, columns: int) -> int:
    """Write the RGB ``image`` atomically as a PNG and say so; 0 (the exit status)."""
    ok, png = cv2.imencode(".png", image[:, :, ::-1])  # RGB -> BGR
    atomic_write_bytes(path, png.tobytes())
    print(f"wrote {path}: {rows} rows x {columns} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
