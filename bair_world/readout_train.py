"""Training and scoring a `bair_world.readout.StateReadout` on a frozen world model.

`readout_data` reads sequences with their object poses (refusing data without them, naming the
file); `frames_of` runs the frozen model over them once: every real frame (for the ``encoded`` head),
and the frames of a free-running imagined rollout from the context under the recorded actions
(latents from the prior, as a planner imagines; for the ``predicted`` head); `fit_readout` trains the
two heads on the encoder's skips of those frames (the frozen encoder runs on each minibatch).
`score_frames` measures the encoded head on held-out real frames, `score_imagined` the predicted head
along 28 imagined steps under pushes (the nearest-object pusher) against the true world's poses
(rebuilt from seeds, so no dataset is needed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from bair_world.data.batch import cond_of, frames_to_float
from bair_world.data.poses import POSES_FILE, missing_poses
from bair_world.readout import StateReadout, config_for

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
class Frames:
    """Frames and their targets: ``encoded`` (real frames) and ``predicted`` (imagined steps), each a
    tuple (frames uint8 (M, 64, 64, 3), poses float32 (M, 9, 3), arm float32 (M, 3))."""

    encoded: tuple[np.ndarray, np.ndarray, np.ndarray]
    predicted: tuple[np.ndarray, np.ndarray, np.ndarray] | None


def imagined_frames(wm, frames: torch.Tensor, conds: torch.Tensor, n_past: int, seed: int = 0) -> np.ndarray:
    """Frames of a free-running rollout: frames (B, T, 3, 64, 64), conds (B, T, 7) -> uint8
    (B, T - n_past, 64, 64, 3): row t - n_past is the imagined frame t (prior latents, one generator
    per row seeded ``seed + row``), quantised as a planner's cost sees it."""
    from bair_world.data.batch import frames_to_uint8

    b, t = frames.shape[:2]
    gens = [torch.Generator().manual_seed(seed + i) for i in range(b)]
    wm.reset(frames[:, :n_past], conds[:, : n_past - 1], gens)
    out = [wm.step(conds[:, step], gens) for step in range(n_past - 1, t - 1)]
    return frames_to_uint8(torch.stack(out, 1))  # (T - n_past) x (B, 3, 64, 64) -> (B, T - n_past, 64, 64, 3)


def frames_of(wm, data: PoseData, imagined: bool = True, batch: int = 16, seed: int = 0) -> Frames:
    """The training examples of ``data`` (see the module docstring)."""
    n_past = wm.model.cfg.n_past
    pred = []
    if imagined:
        for i in range(0, len(data), batch):
            frames = frames_to_float(data.frames[i:i + batch])  # (b, T, 64, 64, 3) uint8 -> (b, T, 3, 64, 64)
            conds = torch.from_numpy(cond_of(data.actions[i:i + batch], data.positions[i:i + batch]))
            pred.append(imagined_frames(wm, frames, conds, n_past, seed + i))
    flat = lambda a: a.reshape(-1, *a.shape[2:])  # noqa: E731  (N, T, ...) -> (N*T, ...)
    arm = data.positions.astype(np.float32)
    encoded = (flat(data.frames), flat(data.poses), flat(arm))
    predicted = None
    if imagined:
        predicted = (flat(np.concatenate(pred)), flat(data.poses[:, n_past:]), flat(arm[:, n_past:]))
    return Frames(encoded, predicted)


def read_state(readout: StateReadout, wm, frames: np.ndarray, kind: str, batch: int = 256):
    """The readout of uint8 frames (M, 64, 64, 3) through the model's encoder -> `State` of (M, ...)."""
    from bair_world.readout import State

    outs = []
    with torch.no_grad():
        for i in range(0, len(frames), batch):
            outs.append(readout(wm.encode_skips(frames_to_float(frames[i:i + batch])), kind))
    return State(*(torch.cat([getattr(o, k) for o in outs]) for k in ("objects", "present", "arm")))


@dataclass
class FitReport:
    """Losses at the start and end of `fit_readout` (mean over the first/last 10 % of steps)."""

    first_loss: float
    last_loss: float
    seconds: float
    history: list[float]


def fit_readout(examples: Frames, wm, hidden: int = 64, steps: int = 1500, batch_size: int = 64, lr: float = 2e-3,
                seed: int = 0, readout: StateReadout | None = None) -> tuple[StateReadout, FitReport]:
    """Train both heads (the ``predicted`` one only when ``examples.predicted`` is given) with Adam on
    the frozen encoder's skips of minibatches.

    Raises:
        ValueError: no frames or no present object among the targets.
    """
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    sets = {"encoded": examples.encoded} | ({"predicted": examples.predicted} if examples.predicted is not None else {})
    if len(examples.encoded[0]) == 0 or not np.isfinite(examples.encoded[1][..., 0]).any():
        raise ValueError("fit_readout: no frames, or no object present in the targets")
    if readout is None:
        readout = StateReadout(config_for(wm.encode_skips(frames_to_float(examples.encoded[0][:1])), hidden))
        readout.fit_statistics(torch.from_numpy(examples.encoded[2]))
    readout.train()
    params = [p for k, p in readout.named_parameters() if k.startswith("heads.") and k.split(".")[1] in sets]
    opt = torch.optim.Adam([{"params": params}, {"params": [readout.homography], "lr": lr * 0.05}], lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, [lr, lr * 0.05], total_steps=max(steps, 1), pct_start=0.1)
    history, start = [], time.perf_counter()
    for step in range(steps):
        readout.heat_weight = max(0.0, 1.0 - 2.0 * step / max(steps, 1))  # heatmaps located first, then metres only
        loss = 0.0
        for kind, (frames, poses, arm) in sets.items():
            idx = torch.randint(len(frames), (min(batch_size, len(frames)),), generator=g).numpy()
            skips = wm.encode_skips(frames_to_float(frames[idx]))  # frozen: inference tensors, no grad
            skips = [x.clone() for x in skips]
            loss = loss + readout.loss(skips, torch.from_numpy(poses[idx]), torch.from_numpy(arm[idx]), kind)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        history.append(loss.item())
    readout.heat_weight = 0.0
    k = max(1, steps // 10)
    report = FitReport(float(np.mean(history[:k])) if history else float("nan"),
                       float(np.mean(history[-k:])) if history else float("nan"), time.perf_counter() - start, history)
    return readout.eval(), report


def _errors(out, poses: np.ndarray, arm: np.ndarray) -> dict:
    """Metres: objects' mean and median centre error over present slots, the arm's mean; presence accuracy."""
    poses, arm = torch.from_numpy(poses), torch.from_numpy(arm)
    present = torch.isfinite(poses[..., 0])
    dist = (out.objects - torch.nan_to_num(poses[..., :2])).norm(dim=-1)[present]
    acc = ((out.present > 0) == present).float().mean()
    return {"objects_m": float(dist.mean()), "objects_median_m": float(dist.median()),
            "objects_within_1cm": float((dist <= 0.01).float().mean()),
            "arm_m": float((out.arm - arm).norm(dim=-1).mean()), "presence_accuracy": float(acc), "frames": len(arm)}


def score_frames(readout: StateReadout, wm, data: PoseData) -> dict:
    """The encoded head on real frames of ``data`` (held out): see `_errors`."""
    frames, poses, arm = frames_of(wm, data, imagined=False).encoded
    return _errors(read_state(readout, wm, frames, "encoded"), poses, arm)


def push_rollouts(seeds, length: int = 30, policy: str = "push") -> PoseData:
    """The true world driven by ``policy`` (default: nearest-object pushes) from each seed, with poses."""
    from bair_world.sim import rollout

    rs = [rollout(int(s), length, policy=policy, poses=True) for s in seeds]
    return PoseData(*(np.stack([getattr(r, k) for r in rs]) for k in ("frames", "actions", "positions", "poses")))


def score_imagined(readout: StateReadout, wm, data: PoseData, seed: int = 0, kind: str = "predicted") -> dict:
    """The ``kind`` head on the imagined frames of a free-running rollout of ``data``'s actions against
    its true poses.

    Returns:
        ``per_step_objects_m`` (T - n_past,) mean object error at each imagined step; ``objects_m`` over
        all steps, ``final_objects_m`` at the last, ``moved_final_m`` at the last step over the objects
        that moved more than `MOVED_M` (the ones a pushing planner cares about; NaN if none moved),
        ``arm_m``, ``steps``.
    """
    frames, poses, arm = frames_of(wm, data, imagined=True, seed=seed).predicted
    n, steps = len(data), data.frames.shape[1] - wm.model.cfg.n_past
    out = read_state(readout, wm, frames, kind)
    poses_t = torch.from_numpy(poses)
    present = torch.isfinite(poses_t[..., 0]).reshape(n, steps, -1)
    dist = (out.objects - torch.nan_to_num(poses_t[..., :2])).norm(dim=-1).reshape(n, steps, -1)  # (n, steps, S)
    per_step = [(dist[:, s][present[:, s]]).mean().item() for s in range(steps)]
    start = torch.from_numpy(data.poses[:, wm.model.cfg.n_past - 1, :, :2])  # (n, S, 2)
    end = torch.from_numpy(data.poses[:, -1, :, :2])
    moved = ((end - start).norm(dim=-1) > MOVED_M) & present[:, -1]  # (n, S)
    final = dist[:, -1]
    return {"per_step_objects_m": per_step, "objects_m": float(dist[present].mean()),
            "final_objects_m": float(final[present[:, -1]].mean()),
            "moved_final_m": float(final[moved].mean()) if moved.any() else float("nan"),
            "moved_objects": int(moved.sum()),
            "arm_m": float((out.arm - torch.from_numpy(arm)).norm(dim=-1).mean()), "steps": steps}


def require_poses(root, split: str) -> None:
    """DataError naming the missing poses file unless ``root``'s ``split`` carries poses (cheap check)."""
    readout_data(root, split, count=1)

