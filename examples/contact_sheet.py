"""Contact sheet: real BAIR frames above synthetic pushing-world frames (every 3rd frame of each sequence).

    python examples/contact_sheet.py [--real ../shared/bair_real/test/GT_175/175] [--rows 5] [--out docs/contact_sheet.png]

The real row is left out (with a note) when the real sequence is absent, as in a fresh clone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from bair_world.io import atomic_write_bytes
from bair_world.sim import generate_sequence

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL = REPO.parent / "shared" / "bair_real" / "test" / "GT_175" / "175"
ZOOM = 3
LABEL_W = 150


def _row(frames: np.ndarray, label: str) -> np.ndarray:
    """(T, 64, 64, 3) RGB -> one labelled, upscaled strip (BGR for OpenCV)."""
    strip = np.concatenate(list(frames), axis=1)[:, :, ::-1]  # (64, T*64, 3) BGR
    strip = cv2.resize(strip, None, fx=ZOOM, fy=ZOOM, interpolation=cv2.INTER_NEAREST)
    pad = np.full((strip.shape[0], LABEL_W, 3), 255, np.uint8)
    for i, line in enumerate(label.split("\n")):
        cv2.putText(pad, line, (6, 30 + 24 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([pad, strip], axis=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL, help="a real BAIR sequence folder")
    parser.add_argument("--rows", type=int, default=5, help="synthetic sequences (seeds 0..rows-1)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "contact_sheet.png")
    args = parser.parse_args(argv)
    rows = []
    if (args.real / "0.png").exists():
        real = np.stack([cv2.imread(str(args.real / f"{t}.png"))[:, :, ::-1] for t in range(0, 30, 3)])
        rows.append(_row(real, "real BAIR\n(test seq 175)"))
    else:
        print(f"{args.real}: no real BAIR sequence here; the sheet shows synthetic frames only")
    for seed in range(args.rows):
        frames, _, _ = generate_sequence(seed)
        rows.append(_row(frames[::3], f"synthetic\nseed {seed}"))
    sheet = np.concatenate(rows, axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ok, png = cv2.imencode(".png", sheet)  # already BGR
    if not ok:
        raise OSError(f"{args.out}: could not encode the contact sheet")
    atomic_write_bytes(args.out, png.tobytes())
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]}): frames 0, 3, ..., 27 of each sequence")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
