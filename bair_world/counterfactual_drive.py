"""`drive`: one action source (`bair_world.counterfactual_sources`) run in the learned model and in the
true pushing world from the same starts, the frames of both kept for scoring."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bair_world.counterfactual_data import Starts
from bair_world.counterfactual_sources import SourceActions
from bair_world.data.batch import cond_of, frames_to_float
from bair_world.seeding import latent_generators
from bair_world.sim import SimConfig, start_world
from bair_world.world_model import WorldModel


@torch.no_grad()
def drive(wm, starts: Starts, rows, source: str, n_past: int, n_future: int, seed: int = 0,
          config: SimConfig = SimConfig(), diagnostics: bool = False) -> dict[str, Any]:
    """Run ``source``'s actions from the starts ``rows`` in the true world and the model.

    With ``diagnostics``, the model also runs one-step (a second state fed the true world's previous
    frame at every step, latents seeded as the free run's) and both modes keep their decode parts.

    Returns:
        {"pred": (B, S, 3, 64, 64) float model frames, "true": uint8 (B, S, 64, 64, 3) true-world frames,
        "labels": uint8 (B, S, 64, 64) their labels, "context_labels": uint8 (B, 64, 64) of the last
        context frame, "conds": float32 (B, S, 7) what both worlds executed}; with ``diagnostics`` also
        "true_flow": float32 (B, S, 2, 64, 64) (`PushWorld.flow_from`) and "modes": {mode: {"pred",
        "flow" ((B, S, 2, 64, 64) or None), "weights" (B, S, 3, 64, 64)}} for `motion_diagnostics.MODES`.
    """
    rows = np.asarray(rows)
    worlds = [start_world(starts.seed(r), starts.frames[r], n_past, config, name=starts.name(r), policy=starts.policy)
              for r in rows]
    context = frames_to_float(starts.frames[rows, :n_past])  # (B, n_past, 3, 64, 64)
    models = {"free_running": wm}
    if diagnostics:  # a second state of the same model, fed the true frames
        models["one_step"] = WorldModel(wm.model, wm.device, wm.precision)
    gens = {mode: latent_generators(seed, [int(starts.indices[r]) for r in rows], 0) for mode in models}  # alike
    for mode, model in models.items():
        model.reset(context, torch.from_numpy(starts.conds[rows, :n_past - 1]), gens[mode])
    actions = SourceActions(source, starts, rows, seed, config)
    b, s_len = len(rows), n_future
    out = {"true": np.empty((b, s_len, 64, 64, 3), np.uint8), "labels": np.empty((b, s_len, 64, 64), np.uint8),
           "context_labels": np.stack([w.labels() for w in worlds]), "conds": np.empty((b, s_len, 7), np.float32)}
    true_flow = np.zeros((b, s_len, 64, 64, 2), np.float32)
    parts = {mode: [] for mode in models}
    true_prev = context[:, -1]  # (B, 3, 64, 64): the one-step mode's x_t
    for s in range(s_len):
        t = n_past - 1 + s
        act = actions(t, worlds)  # (B, 4) float32
        pos = np.stack([w.position for w in worlds])  # (B, 3) float64: where the true world is
        cond = torch.from_numpy(cond_of(act, pos))  # (B, 7)
        for mode, model in models.items():
            p = model.step_parts(cond, gens[mode], x_prev=true_prev if mode == "one_step" else None)
            parts[mode].append((p.frame.cpu(), None if p.flow is None else p.flow.cpu(), p.weights.cpu()))
        for i, w in enumerate(worlds):
            before = w.pose_state()
            out["true"][i, s] = w.step(act[i].astype(np.float64), pos[i])
            out["labels"][i, s] = w.labels()
            if diagnostics:
                true_flow[i, s] = w.flow_from(before)
        out["conds"][:, s] = cond.numpy()
        true_prev = frames_to_float(out["true"][:, s])
    stacked = {mode: _stack_steps(steps) for mode, steps in parts.items()}
    out["pred"] = stacked["free_running"]["pred"]
    if diagnostics:
        out["modes"] = stacked
        out["true_flow"] = torch.from_numpy(true_flow).permute(0, 1, 4, 2, 3)  # (B, S, H, W, 2) -> (B, S, 2, H, W)
    return out


def _stack_steps(steps: list[tuple]) -> dict[str, torch.Tensor | None]:
    """{"pred", "flow", "weights"}: S steps of (frame, flow, weights) (B, C, 64, 64) each (or None) stacked
    into (B, S, C, 64, 64)."""
    return {name: None if column[0] is None else torch.stack(column, 1)
            for name, column in zip(("pred", "flow", "weights"), zip(*steps))}
