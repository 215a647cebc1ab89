"""The decoder's output heads as one registry (`bair_world.models.heads`): `SVG.decode` delegates to the
configured head; the bundled checkpoint and every head decode bit for bit as release 3's branching
`SVG.decode` did (reproduced below as the reference); a new head plugs in as one entry."""

from __future__ import annotations

import pytest
import torch

from bair_world.checkpoint import default_checkpoint, load_checkpoint
from bair_world.models import SVG, model_preset
from bair_world.models import config as model_config
from bair_world.models import heads
from bair_world.models.motion import DecodeParts, composite

VARIANTS = {"plain": {}, "plain residual": dict(residual=True), "single": dict(motion=True),
            "single context spatial": dict(motion=True, context_mask=True, residual=True, spatial_cond=True),
            "pyramid": dict(motion=True, flow_head="pyramid"),
            "pyramid context": dict(motion=True, flow_head="pyramid", context_mask=True, max_flow=8.0)}


def release3_decode_parts(model: SVG, h_pred, skips, x_prev, cond, context) -> DecodeParts:
    """`SVG.decode_parts` as release 3 wrote it: branches on ``motion`` and the pyramid module."""
    cond_n = model._decoder_cond(cond, h_pred)
    base = torch.logit(x_prev.clamp(1e-3, 1 - 1e-3))
    if model.motion_head_output() is None:
        frame = (torch.sigmoid(base + model.decoder(h_pred, skips, cond_n, logits=True)) if model.cfg.residual
                 else model.decoder(h_pred, skips, cond_n))
        weights = torch.zeros_like(frame[:, :1]).expand(-1, 3, -1, -1).clone()
        weights[:, 1] = 1.0
        return DecodeParts(frame, None, weights)
    feats = model.decoder.features(h_pred, skips, cond_n)
    out = model.decoder.upc5(feats)
    out = base + out if model.cfg.residual else out
    motion, limit = model.motion_head(feats), model.cfg.max_flow
    if model.cfg.flow_head == "single":
        flow = limit * torch.tanh(motion[:, :2])
    else:
        flow = limit * torch.tanh((model.flow_pyramid(feats) + motion[:, :2]) / limit)
    return composite(motion, torch.sigmoid(out), x_prev, context if model.cfg.context_mask else None, flow)


def _step(model: SVG, seed: int = 0) -> tuple:
    """The arguments of `SVG.decode` for one step of 2 rows."""
    g = torch.Generator().manual_seed(seed)
    x, cond = torch.rand(2, 3, 64, 64, generator=g), 0.4 + 0.05 * torch.randn(2, 7, generator=g)
    adv = model.advance(model.init_state(2), *model.encoder(x), cond, x_prev=x,
                        noise=torch.randn(2, model.cfg.z_dim, generator=g))
    return adv.h_pred, adv.state.skips, x, cond, adv.state.context


@torch.no_grad()
def _decoded(model: SVG) -> tuple[torch.Tensor, DecodeParts, DecodeParts]:
    """(decode, decode_parts, release 3's decode_parts) of one step."""
    args = _step(model)
    return model.decode(*args), model.decode_parts(*args), release3_decode_parts(model, *args)


def _assert_same(new: DecodeParts, old: DecodeParts) -> None:
    assert torch.equal(new.frame, old.frame) and torch.equal(new.weights, old.weights)
    assert (new.flow is None) == (old.flow is None) and (new.flow is None or torch.equal(new.flow, old.flow))


def test_the_bundled_checkpoint_decodes_bit_for_bit_as_release_3():
    model, _ = load_checkpoint(default_checkpoint())
    assert isinstance(model.head, heads.SingleFlowHead) and model.motion_head_output() is not None
    frame, parts, old = _decoded(model.eval())
    _assert_same(parts, old)
    assert torch.equal(frame, old.frame) and parts.flow.abs().max() > 0  # a trained head: the warp matters


@pytest.mark.parametrize("name", VARIANTS)
def test_every_head_decodes_as_release_3_and_decode_is_decode_parts_frame(name):
    torch.manual_seed(0)
    model = SVG(model_preset("tiny", **VARIANTS[name])).eval()
    with torch.no_grad():  # away from the initial zero flow and shut/open masks, so every branch counts
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    frame, parts, old = _decoded(model)
    _assert_same(parts, old)
    assert torch.equal(frame, old.frame)
    assert model.head is heads.HEADS[heads.head_name(model.cfg)]


def test_the_registry_names_the_configs_flow_heads_and_keeps_release_3_checkpoint_keys():
    assert set(heads.HEADS) == {"plain", *model_config.FLOW_HEADS}
    keys = lambda **kw: {k.split(".")[0] for k in SVG(model_preset("tiny", **kw)).state_dict()}  # noqa: E731
    assert "motion_head" not in keys() and keys(motion=True) - keys() == {"motion_head"}
    assert keys(motion=True, flow_head="pyramid") - keys() == {"motion_head", "flow_pyramid"}


def test_a_new_head_is_one_registry_entry(monkeypatch):
    class StillHead(heads.SingleFlowHead):  # e.g. a head that warps nothing: flow 0, masks as "single"
        def flow(self, model, feats, motion):
            return torch.zeros_like(motion[:, :2])

    monkeypatch.setitem(heads.HEADS, "still", StillHead())
    monkeypatch.setattr(model_config, "FLOW_HEADS", (*model_config.FLOW_HEADS, "still"))
    torch.manual_seed(0)
    model = SVG(model_preset("tiny", motion=True, flow_head="still")).eval()
    with torch.no_grad():
        args = _step(model)
        frame, parts = model.decode(*args), model.decode_parts(*args)
    assert torch.equal(parts.flow, torch.zeros_like(parts.flow)) and torch.equal(frame, parts.frame)
