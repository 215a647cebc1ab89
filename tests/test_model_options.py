"""The pushing-oriented model options: spatial cond maps in the decoder, the context mask, the
change-weighted loss, and fine-tuning into them from a checkpoint without them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bair_world.checkpoint import load_checkpoint, save_checkpoint
from bair_world.models import SVG
from bair_world.models.backbone import spatial_maps
from bair_world.models.config import ModelConfig
from bair_world.models.config import model_preset
from bair_world.training.loss import SequenceLoss, changed_pixels, weighted_mse
from bair_world.training.model_init import init_from
from bair_world.training.train import train

from test_train import tiny

DATA_COUNTS = {"train": 6, "validate": 3}

OPTIONS = {
    "spatial": dict(spatial_cond=True),
    "context": dict(motion=True, context_mask=True),
    "both-vgg": dict(backbone="vgg", spatial_cond=True, motion=True, context_mask=True),
}


def _rollout(model: SVG, frames: torch.Tensor, conds: torch.Tensor, seed: int = 0) -> torch.Tensor:
    state, x, out = model.init_state(frames.shape[0]), frames[:, 0], []
    for t in range(frames.shape[1] - 1):
        step = model.step(state, x, conds[:, t], generator=torch.Generator().manual_seed(seed + t))
        state = step.state
        x = frames[:, t + 1] if t + 1 < model.cfg.n_past else step.frame
        out.append(step.frame)
    return torch.stack(out, 1)


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_each_option_trains_a_step_and_round_trips_a_checkpoint(name, data_root, tmp_path):
    cfg = tiny(data_root, tmp_path)
    cfg = cfg.replace(model=cfg.model.replace(**OPTIONS[name]), epochs=1, epoch_size=1, change_weight=4.0)
    summary = train(cfg)
    assert np.isfinite(summary["val_psnr"])
    model, info = load_checkpoint(tmp_path / "run" / "last")
    for key, value in OPTIONS[name].items():
        assert getattr(model.cfg, key) == value
    model.eval()
    save_checkpoint(tmp_path / "copy", model, step=1, epoch=1)
    again, _ = load_checkpoint(tmp_path / "copy")
    again.eval()
    frames, conds = torch.rand(2, 5, 3, 64, 64), torch.randn(2, 5, 7)
    assert torch.equal(_rollout(model, frames, conds), _rollout(again, frames, conds))


def test_spatial_maps_broadcast_the_cond_beside_coordinates():
    cond = torch.tensor([[0.5, -2.0]])
    maps = spatial_maps(cond, 4)  # (1, 4, 4, 4)
    assert maps.shape == (1, 4, 4, 4)
    assert torch.all(maps[0, 0] == 0.5) and torch.all(maps[0, 1] == -2.0)
    assert torch.allclose(maps[0, 2, 0], torch.tensor([-1.0, -1 / 3, 1 / 3, 1.0]))  # x varies along a row
    assert torch.allclose(maps[0, 3, :, 0], torch.tensor([-1.0, -1 / 3, 1 / 3, 1.0]))  # y along a column


def test_the_decoder_uses_the_position_spatially():
    torch.manual_seed(0)
    model = SVG(model_preset("tiny", spatial_cond=True)).eval()
    h, skips = model.encoder(torch.rand(2, 3, 64, 64))
    a, b = torch.zeros(2, 7), torch.zeros(2, 7)
    b[:, 4] = 3.0  # another end-effector x
    x_prev = torch.rand(2, 3, 64, 64)
    assert not torch.allclose(model.decode(h, skips, x_prev, a), model.decode(h, skips, x_prev, b))
    with pytest.raises(ValueError, match="cond"):
        model.decode(h, skips, x_prev)


def test_the_context_frame_is_the_last_real_context_frame_and_can_be_copied_exactly():
    torch.manual_seed(0)
    model = SVG(model_preset("tiny", motion=True, context_mask=True, n_past=2)).eval()
    frames, conds = torch.rand(1, 4, 3, 64, 64), torch.zeros(1, 4, 7)
    state = model.init_state(1)
    for t in range(3):
        out = model.step(state, frames[:, t], conds[:, t], generator=torch.Generator().manual_seed(t))
        state = out.state
        assert torch.equal(state.context, frames[:, min(t, 1)])  # x_0, then x_1 forever
    head = model.motion_head_output()
    with torch.no_grad():  # a context logit far above the others: the output is the context frame
        head.bias.copy_(torch.tensor([0.0, 0.0, -30.0, 30.0]))
    out = model.step(state, frames[:, 3], conds[:, 3], generator=torch.Generator().manual_seed(3))
    assert torch.allclose(out.frame, frames[:, 1], atol=1e-6)


def test_context_mask_needs_motion():
    with pytest.raises(ValueError, match="context_mask needs motion"):
        ModelConfig(context_mask=True)


def test_fine_tuning_adds_the_options_and_starts_where_the_checkpoint_was(tmp_path):
    torch.manual_seed(0)
    base = SVG(model_preset("tiny", motion=True)).eval()
    save_checkpoint(tmp_path / "base", base, step=3, epoch=1)
    grown = SVG(base.cfg.replace(spatial_cond=True, context_mask=True))
    init_from(grown, tmp_path / "base")
    bias = grown.motion_head_output().bias
    assert torch.equal(bias[:3], base.motion_head_output().bias) and bias[3] == -6.0  # a new context logit
    grown.eval()
    frames, conds = torch.rand(2, 6, 3, 64, 64), torch.randn(2, 6, 7)
    # the only difference is the context mask's e^-6 share of the output
    assert (_rollout(base, frames, conds) - _rollout(grown, frames, conds)).abs().max() < 5e-3
    other = SVG(base.cfg.replace(g_dim=48))
    with pytest.raises(ValueError, match="differs"):
        init_from(other, tmp_path / "base")
    without = SVG(base.cfg.replace(motion=False))
    with pytest.raises(ValueError, match="differs"):
        init_from(without, tmp_path / "base")  # options are added, never dropped


def test_changed_pixels_mark_steps_and_departures_from_the_context_frame():
    frames = torch.zeros(1, 4, 3, 2, 2)  # (B, T, C, H, W); n_past 2: the context frame is x_1
    frames[0, 2, 0, 0, 0] = 1.0  # x_2 differs at (0, 0) from x_1 and from the context
    frames[0, 3, 1, 0, 0] = 1.0  # x_3 differs at (0, 0) from x_2 (another channel) and from x_1
    frames[0, 0, 2, 1, 1] = 1.0  # x_0 -> x_1 changes (1, 1)
    changed = changed_pixels(frames, n_past=2)  # ((T-1)*B, 1, H, W), time-major
    expected = torch.tensor([[[0.0, 0.0], [0.0, 1.0]],  # x_1: only its step from x_0
                             [[1.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]])
    assert torch.equal(changed[:, 0], expected)


def test_weighted_mse_counts_changed_pixels_more_and_keeps_the_mse_scale():
    pred, target = torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    target[0, :, 0, 0] = 1.0
    assert weighted_mse(pred, target, torch.ones(1, 1, 2, 2)) == pytest.approx(0.25)
    weight = torch.ones(1, 1, 2, 2)
    weight[0, 0, 0, 0] = 5.0
    assert weighted_mse(pred, target, weight) == pytest.approx(5.0 / 4 / (8.0 / 4))
    loss = SequenceLoss(SVG(model_preset("tiny")), n_past=2, change_weight=4.0)
    frames, conds = torch.rand(2, 4, 3, 64, 64), torch.randn(2, 4, 7)
    total, mse, _ = loss(frames, conds, torch.tensor(0.0), torch.ones(4, dtype=torch.bool))
    assert torch.isfinite(total) and not torch.isclose(total, mse)
