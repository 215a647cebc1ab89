"""Motion diagnostics (`bair_world.motion_diagnostics`) and the counterfactual evaluation's one-step mode:
exact statistics on a hand-made flow, and on tiny models whose decoder is replaced by a known one."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bair_world import counterfactual as cf
from bair_world import metrics
from bair_world.counterfactual_data import load_starts, world_model
from bair_world.data.batch import frames_to_float
from bair_world.models import SVG
from bair_world.models.config import model_preset
from bair_world.models.motion import DecodeParts, warp
from bair_world.motion_diagnostics import MODES, REGIONS, MotionStats, motion_regions
from bair_world.sim.render import LABEL_ARM, LABEL_OBJECTS
from bair_world.world_model import WorldModel

SEEDS = [15, 34]  # pushing-world seeds whose nearest-object push moves an object within 4 steps
N_FUTURE = 4
FLOW = (0.6, -0.8)  # the stand-in decoder's constant flow: 1 px


def _hand_made():
    """One row, one step of 8x8: an object moved 2 px right (columns 0-1 -> 2-3 of row 0), the arm at (5, 5)
    moving 1 px down; everything else static."""
    ctx_labels = torch.zeros(1, 8, 8, dtype=torch.uint8)
    ctx_labels[0, 0, 0:2] = LABEL_OBJECTS
    labels = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    labels[0, 0, 0, 2:4] = LABEL_OBJECTS
    labels[0, 0, 5, 5] = LABEL_ARM
    true_flow = torch.zeros(1, 1, 2, 8, 8)
    true_flow[0, 0, 0, 0, 2:4] = -2.0  # backward: the content came from 2 px to the left
    true_flow[0, 0, 1, 5, 5] = -1.0  # and from 1 px above
    return ctx_labels, labels, true_flow


def test_regions_and_statistics_are_exact_on_a_hand_made_flow():
    ctx_labels, labels, true_flow = _hand_made()
    masks = motion_regions(labels, ctx_labels, true_flow)
    assert masks["moving"][0, 0].nonzero().tolist() == [[0, 2], [0, 3]]
    assert masks["arrived"][0, 0].nonzero().tolist() == [[0, 2], [0, 3]]
    assert masks["vacated"][0, 0].nonzero().tolist() == [[0, 0], [0, 1]]
    assert masks["arm"][0, 0].nonzero().tolist() == [[5, 5]] and masks["static"].sum() == 64 - 5
    per_step = motion_regions(labels, ctx_labels[:, None], true_flow)  # one reference per step (S = 1)
    assert all(torch.equal(per_step[r], masks[r]) for r in REGIONS)
    in_step = motion_regions(labels, labels, true_flow)  # the step's own frame: nothing moved since
    assert not in_step["arrived"].any() and not in_step["vacated"].any()
    weights = torch.zeros(1, 1, 3, 8, 8)
    weights[:, :, 0] = 0.25
    weights[:, :, 1] = 0.75
    flow = torch.tensor([-1.0, 1.0]).reshape(1, 1, 2, 1, 1).expand(1, 1, 2, 8, 8)  # (1, 1, 2, 8, 8)
    stats = MotionStats()
    stats.update(masks, weights, flow, true_flow)
    out = stats.summary()
    mean = {r: {k: v["mean"] for k, v in out[r].items()} for r in REGIONS}
    for region in REGIONS:
        assert (mean[region]["warp"], mean[region]["generated"], mean[region]["context"]) == (0.25, 0.75, 0.0)
        assert mean[region]["flow"] == pytest.approx(math.sqrt(2))
    # moving/arrived: true (-2, 0) vs predicted (-1, 1): |d| = |(1, 1)|, cosine 2 / (2 sqrt 2)
    for region in ("moving", "arrived"):
        assert mean[region]["true_flow"] == pytest.approx(2.0)
        assert mean[region]["epe"] == pytest.approx(math.sqrt(2))
        assert mean[region]["cosine"] == pytest.approx(0.5 ** 0.5)
    # arm: true (0, -1): |(-1, 2)|, cosine -1 / sqrt 2
    assert mean["arm"]["epe"] == pytest.approx(math.sqrt(5)) and mean["arm"]["cosine"] == pytest.approx(-(0.5 ** 0.5))
    for region in ("static", "vacated"):  # nothing moves there: the error is the predicted flow, no direction
        assert mean[region]["true_flow"] == 0.0 and mean[region]["epe"] == pytest.approx(math.sqrt(2))
        assert mean[region]["cosine"] is None and out[region]["cosine"]["per_step"] == [None]
    plain = MotionStats()
    plain.update(masks, weights, None, true_flow)
    assert all(plain.summary()[r][k] is None for r in REGIONS for k in ("flow", "cosine", "epe"))


def _tiny(motion: bool) -> SVG:
    torch.manual_seed(0)
    kw = {"motion": True, "context_mask": True} if motion else {}
    return SVG(model_preset("tiny", **kw))


def _decoder(make_frame, flow=None):
    """A stand-in `SVG.decode_parts`: frame ``make_frame(x_prev)``, the constant ``flow`` (or none) and all
    the weight on the warp (with a flow) or the generated branch."""
    def decode_parts(h_pred, skips, x_prev, cond=None, context=None) -> DecodeParts:
        n = x_prev.shape[0]
        weights = x_prev.new_zeros(n, 3, 64, 64)
        weights[:, 0 if flow is not None else 1] = 1.0
        f = None if flow is None else x_prev.new_tensor(flow).reshape(1, 2, 1, 1).expand(n, 2, 64, 64).contiguous()
        return DecodeParts(make_frame(x_prev, f), f, weights)
    return decode_parts


def _run(model, source: str = "push"):
    """(the counterfactual report of ``source``, `drive`'s run of the same starts)."""
    report = cf.evaluate(model, SEEDS, sources=(source,), count=len(SEEDS), n_future=N_FUTURE, sensitivity=False)
    wm, n_past = world_model(model)
    starts = load_starts(SEEDS, "test", None, n_past + N_FUTURE, need_seeds=True)
    run = cf.drive(wm, starts, np.arange(len(SEEDS)), source, n_past, N_FUTURE, diagnostics=True)
    return report["sources"][source], run, starts


def test_a_constant_warp_is_reported_exactly_against_the_true_flow():
    model = _tiny(motion=True)
    model.decode_parts = _decoder(warp, FLOW)
    result, run, _ = _run(model)
    true = run["true_flow"].double()  # (B, S, 2, 64, 64)
    labels = torch.from_numpy(run["labels"])
    moving = true.norm(dim=2) > 0.5  # (B, S, 64, 64)
    pred = torch.tensor(FLOW, dtype=torch.float64).reshape(1, 1, 2, 1, 1)
    cosine = (pred * true).sum(2) / true.norm(dim=2).clamp_min(1e-12)  # |pred| = 1
    epe = (pred - true).norm(dim=2)
    for mode in MODES:
        motion = result["motion"][mode]
        for region in REGIONS:
            stats = motion[region]
            if stats["warp"]["mean"] is None:
                continue
            assert (stats["warp"]["mean"], stats["generated"]["mean"], stats["context"]["mean"]) == (1.0, 0.0, 0.0)
            assert stats["flow"]["mean"] == pytest.approx(1.0)
        obj = (labels == LABEL_OBJECTS) & moving
        assert obj.any() and motion["moving"]["cosine"]["mean"] == pytest.approx(cosine[obj].mean().item())
        assert motion["moving"]["epe"]["mean"] == pytest.approx(epe[obj].mean().item())
        assert motion["moving"]["true_flow"]["mean"] == pytest.approx(true.norm(dim=2)[obj].mean().item())


def test_a_model_without_motion_reports_the_generated_branch_and_no_flow():
    result, _, _ = _run(_tiny(motion=False), "recorded")
    for mode in MODES:
        for region in ("static", "arm", "moving"):
            stats = result["motion"][mode][region]
            assert (stats["warp"]["mean"], stats["generated"]["mean"], stats["context"]["mean"]) == (0.0, 1.0, 0.0)
            assert stats["flow"] is None and stats["cosine"] is None and stats["epe"] is None


def test_one_step_feeds_the_true_previous_frame():
    model = _tiny(motion=True)
    model.decode_parts = _decoder(lambda x, f: x.clone())  # copies its input
    result, run, starts = _run(model)
    true = frames_to_float(run["true"])  # (B, S, 3, 64, 64)
    context = frames_to_float(starts.frames[:, 1])  # the last context frame
    prev = torch.cat([context[:, None], true[:, :-1]], 1)  # (B, S, 3, 64, 64): the true x_t of each step
    assert torch.equal(run["modes"]["one_step"]["pred"], prev)
    expected = metrics.psnr(prev, true).mean(0).tolist()  # (B, S) -> per step
    assert result["one_step"]["psnr"]["per_step"] == pytest.approx(expected)
    for name in (*cf.FRAME_METRICS, *cf.POOLED_METRICS):  # each mode scores as its copy baseline
        for mode, baseline in (("one_step", "copy_previous"), ("model", "copy_last")):
            assert result["table"][name][mode] == pytest.approx(result["table"][name][baseline], nan_ok=True), name
    assert result["table"]["arrived_recall"]["one_step"] == 0.0  # recall in the step: copying x_t never recalls


def test_step_parts_gives_the_frames_and_latents_of_step():
    model = _tiny(motion=True)
    frames, conds = torch.rand(2, 2, 3, 64, 64), torch.randn(2, 3, 7)
    out = []
    for method in ("step", "step_parts"):
        wm = WorldModel(model)
        gens = [torch.Generator().manual_seed(i) for i in range(2)]
        wm.reset(frames, conds[:, :1], gens)
        steps = [getattr(wm, method)(conds[:, 1 + i], gens) for i in range(2)]
        out.append(torch.stack([s if method == "step" else s.frame for s in steps], 1))
    assert torch.equal(out[0], out[1])
    parts = wm.step_parts(conds[:, 0], gens, x_prev=frames[:, 0])
    assert parts.flow.shape == (2, 2, 64, 64) and torch.allclose(parts.weights.sum(1), torch.ones(2, 64, 64))
    with pytest.raises(ValueError, match="x_prev must be"):
        wm.step_parts(conds[:, 0], gens, x_prev=frames[:1, 0])
