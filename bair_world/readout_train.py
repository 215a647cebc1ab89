"""Training and scoring a `bair_world.readout.StateReadout` on a frozen world model.

`readout_data` reads sequences with their object poses (refusing data without them, naming the
file); `codes_of` runs the frozen model over them once: the encoder's code of every real frame, and
the predictor's output along a free-running imagined rollout from the context under the recorded
actions (latents from the prior, as a planner imagines); `fit_readout` trains the two heads on those
codes. `score_frames` measures the encoded head on held-out real frames, `score_imagined` the
predicted head along 28 imagined steps under pushes (the nearest-object pusher) against the true
world's poses (rebuilt from seeds, so no dataset is needed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from bair_world.data.batch import cond_of, frames_to_float
from bair_world.data.poses import POSES_FILE, missing_poses
from bair_world.readout import ReadoutConfig, StateReadout

#: An object "moved" along a scored rollout when its centre ends this far (metres) from its start.
MOVED_M = 0.01


@dataclass
class PoseData:
    """Sequences with their ground truth: frames uint8 (N, T, 64, 64, 3), actions (N, T, 4),
    positions (N, T, 3) (the arm), poses float32 (N, T, 9, 3) (NaN rows: colours not in the scene)."""

    frames: np.ndarray
    actions: np.ndarray
    positions: np.ndarray
    poses: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


def readout_data(root, split: str, count: int | None = None, length: int | None = None) -> PoseData:
    """The first ``count`` sequences of a split (folder or packed) with their poses (``length`` steps; None: all).

    Raises:
        DataError: naming the missing poses file (real BAIR, or data written before poses were recorded).
    """
    from pathlib import Path

    from bair_world.data.bair_folder import list_sequences, read_sequence
    from bair_world.data.packed import PackedSplit, is_packed
    from bair_world.data.poses import read_poses

    root = Path(root)
    if is_packed(root):
        data = PackedSplit(root, split)
        if data.poses is None:
            raise missing_poses(root / split / "poses.npy")
        n = len(data) if count is None else min(count, len(data))
        return PoseData(*(np.array(a[:n, :length]) for a in (data.frames, data.actions, data.positions, data.poses)))
    dirs = list_sequences(root, split)[:count]
    seqs, poses = [], []
    for seq in dirs:
        seqs.append(read_sequence(seq, length))
        p = read_poses(seq, len(seqs[-1][0]))
        if p is None:
            raise missing_poses(seq / POSES_FILE)
        poses.append(p)
    return PoseData(*(np.stack([s[k] for s in seqs]) for k in range(3)), np.stack(poses))


@dataclass
class Codes:
    """Codes and their targets: ``encoded`` (real frames) and ``predicted`` (imagined steps), each
    a tuple (codes float32 (M, g), poses (M, 9, 3), arm (M, 3))."""

    encoded: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    predicted: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None


def imagined_codes(wm, frames: torch.Tensor, conds: torch.Tensor, n_past: int, seed: int = 0,
                   decode_last: bool = True) -> torch.Tensor:
    """Predictor outputs of a free-running rollout: frames (B, T, 3, 64, 64), conds (B, T, 7) ->
    (B, T - n_past, g): row t - n_past is the imagined code of frame t (prior latents, one generator
    per row seeded ``seed + row``)."""
    b, t = frames.shape[:2]
    gens = [torch.Generator().manual_seed(seed + i) for i in range(b)]
    wm.reset(frames[:, :n_past], conds[:, : n_past - 1], gens)
    out = []
    for step in range(n_past - 1, t - 1):
        last = step == t - 2
        h, _ = wm.step_latent(conds[:, step], gens, decode=decode_last or not last)
        out.append(h)
    return torch.stack(out, 1)  # (T - n_past) x (B, g) -> (B, T - n_past, g)


def codes_of(wm, data: PoseData, imagined: bool = True, batch: int = 8, seed: int = 0) -> Codes:
    """Run the frozen model over ``data`` once (see the module docstring)."""
    n_past = wm.model.cfg.n_past
    enc, pred = [], []
    for i in range(0, len(data), batch):
        frames = frames_to_float(data.frames[i:i + batch])  # (b, T, 64, 64, 3) uint8 -> (b, T, 3, 64, 64)
        b, t = frames.shape[:2]
        enc.append(wm.encode(frames.reshape(b * t, *frames.shape[2:])))  # (b*T, g)
        if imagined:
            conds = torch.from_numpy(cond_of(data.actions[i:i + batch], data.positions[i:i + batch]))
            pred.append(imagined_codes(wm, frames, conds, n_past, seed + i, decode_last=False).reshape(-1, enc[-1].shape[1]))
    poses = torch.from_numpy(data.poses)  # (N, T, 9, 3)
    arm = torch.from_numpy(data.positions.astype(np.float32))  # (N, T, 3)
    encoded = (torch.cat(enc), poses.reshape(-1, *poses.shape[2:]), arm.reshape(-1, 3))
    predicted = None
    if imagined:
        predicted = (torch.cat(pred), poses[:, n_past:].reshape(-1, *poses.shape[2:]), arm[:, n_past:].reshape(-1, 3))
    return Codes(encoded, predicted)


@dataclass
class FitReport:
    """Losses at the start and end of `fit_readout` (mean over the first/last 10 % of steps)."""

    first_loss: float
    last_loss: float
    seconds: float
    history: list[float]


def fit_readout(codes: Codes, hidden: int = 256, steps: int = 1500, batch_size: int = 256, lr: float = 1e-3,
                seed: int = 0, readout: StateReadout | None = None) -> tuple[StateReadout, FitReport]:
    """Train both heads (the ``predicted`` one only when ``codes.predicted`` is given) with Adam.

    Raises:
        ValueError: no codes or no present object among the targets.
    """
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    sets = {"encoded": codes.encoded} | ({"predicted": codes.predicted} if codes.predicted is not None else {})
    if len(codes.encoded[0]) == 0 or not torch.isfinite(codes.encoded[1][..., 0]).any():
        raise ValueError("fit_readout: no codes, or no object present in the targets")
    if readout is None:
        readout = StateReadout(ReadoutConfig(g_dim=codes.encoded[0].shape[1], hidden=hidden))
        readout.fit_statistics(codes.encoded[1], codes.encoded[2], {k: v[0] for k, v in sets.items()})
    readout.train()
    opt = torch.optim.Adam(readout.heads.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    history, start = [], time.perf_counter()
    for _ in range(steps):
        loss = 0.0
        for kind, (h, poses, arm) in sets.items():
            idx = torch.randint(len(h), (min(batch_size, len(h)),), generator=g)
            loss = loss + readout.loss(h[idx], poses[idx], arm[idx], kind)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        history.append(loss.item())
    k = max(1, steps // 10)
    report = FitReport(float(np.mean(history[:k])) if history else float("nan"),
                       float(np.mean(history[-k:])) if history else float("nan"), time.perf_counter() - start, history)
    return readout.eval(), report


def _errors(readout: StateReadout, h: torch.Tensor, poses: torch.Tensor, arm: torch.Tensor, kind: str) -> dict:
    """Metres: objects' mean and median centre error over present slots, the arm's mean; presence accuracy."""
    with torch.no_grad():
        out = readout(h, kind)
    present = torch.isfinite(poses[..., 0])
    dist = (out.objects - torch.nan_to_num(poses[..., :2])).norm(dim=-1)[present]
    acc = ((out.present > 0) == present).float().mean()
    return {"objects_m": float(dist.mean()), "objects_median_m": float(dist.median()),
            "objects_within_1cm": float((dist <= 0.01).float().mean()),
            "arm_m": float((out.arm - arm).norm(dim=-1).mean()), "presence_accuracy": float(acc), "frames": len(h)}


def score_frames(readout: StateReadout, wm, data: PoseData) -> dict:
    """The encoded head on real frames of ``data`` (held out): see `_errors`."""
    codes = codes_of(wm, data, imagined=False)
    return _errors(readout, *codes.encoded, "encoded")


def push_rollouts(seeds, length: int = 30, policy: str = "push") -> PoseData:
    """The true world driven by ``policy`` (default: nearest-object pushes) from each seed, with poses."""
    from bair_world.sim import rollout

    rs = [rollout(int(s), length, policy=policy, poses=True) for s in seeds]
    return PoseData(*(np.stack([getattr(r, k) for r in rs]) for k in ("frames", "actions", "positions", "poses")))


def score_imagined(readout: StateReadout, wm, data: PoseData, seed: int = 0) -> dict:
    """The predicted head along a free-running rollout of ``data``'s actions against its true poses.

    Returns:
        ``per_step_objects_m`` (T - n_past,) mean object error at each imagined step; ``objects_m`` over
        all steps, ``final_objects_m`` at the last, ``moved_final_m`` at the last step over the objects
        that moved more than `MOVED_M` (the ones a pushing planner cares about; NaN if none moved),
        ``arm_m``, ``steps``.
    """
    codes = codes_of(wm, data, imagined=True, seed=seed)
    h, poses, arm = codes.predicted
    n, steps = len(data), data.frames.shape[1] - wm.model.cfg.n_past
    with torch.no_grad():
        out = readout(h, "predicted")
    present = torch.isfinite(poses[..., 0]).reshape(n, steps, -1)
    dist = (out.objects - torch.nan_to_num(poses[..., :2])).norm(dim=-1).reshape(n, steps, -1)  # (n, steps, S)
    per_step = [(dist[:, s][present[:, s]]).mean().item() for s in range(steps)]
    start = torch.from_numpy(data.poses[:, wm.model.cfg.n_past - 1, :, :2])  # (n, S, 2)
    end = torch.from_numpy(data.poses[:, -1, :, :2])
    moved = ((end - start).norm(dim=-1) > MOVED_M) & present[:, -1]  # (n, S)
    final = dist[:, -1]
    return {"per_step_objects_m": per_step, "objects_m": float(dist[present].mean()),
            "final_objects_m": float(final[present[:, -1]].mean()),
            "moved_final_m": float(final[moved].mean()) if moved.any() else float("nan"),
            "moved_objects": int(moved.sum()),
            "arm_m": float((out.arm - arm).norm(dim=-1).mean()), "steps": steps}


def require_poses(root, split: str) -> None:
    """DataError naming the missing poses file unless ``root``'s ``split`` carries poses (cheap check)."""
    readout_data(root, split, count=1)

