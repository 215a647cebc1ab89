"""Options honoured or removed (issue 31 item 5): ``cond_dim``/``channels`` are gone (old configs that
record their only values still load), and every option a shipped recipe (`training/presets.py`) uses
does what it says: ``tf_mode="step"``, the horizon curriculum, ``detach_feedback`` and the motion
losses' weights."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from bair_world.checkpoint import CheckpointError, default_checkpoint, load_checkpoint
from bair_world.models import SVG
from bair_world.models.config import ModelConfig, model_preset
from bair_world.training import presets
from bair_world.training import train as train_module
from bair_world.training.options import parse_config
from bair_world.training.loss import SequenceLoss
from bair_world.training.train import train


# --- removed options ------------------------------------------------------------------------------

def test_cond_dim_and_channels_are_no_options_but_old_configs_recording_them_load(tmp_path):
    for option in ("--cond-dim", "--cond_dim", "--channels"):
        with pytest.raises(SystemExit):
            parse_config([option, "7"])
    old = {**model_preset("tiny").to_dict(), "cond_dim": 7, "channels": 3}  # as configs before issue 31
    assert ModelConfig.from_dict(old) == model_preset("tiny") and "cond_dim" not in model_preset("tiny").to_dict()
    for name, value in (("cond_dim", 5), ("channels", 1), ("cond_dim", 7.0), ("channels", True)):
        with pytest.raises(ValueError, match=f"{name} must be"):
            ModelConfig.from_dict({**old, name: value})
    # the bundled checkpoint records both (and its model_sha256 still verifies); another value is refused
    ckpt = shutil.copytree(default_checkpoint(), tmp_path / "ckpt")
    config = json.loads((ckpt / "config.json").read_text())
    assert config["model"]["cond_dim"] == 7 and config["model"]["channels"] == 3
    load_checkpoint(ckpt)
    config["model"]["cond_dim"] = 8
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="config.json.*cond_dim must be 7"):
        load_checkpoint(ckpt)


# --- the recipes' options -------------------------------------------------------------------------

class Recording(SequenceLoss):
    """The training loss, recording what each training step got (window length, teacher mask, detach);
    its loss is 0 (no model call: the test is about what reaches the loss, fast)."""

    calls: list = []

    def forward(self, frames, conds, beta, teacher, labels=None, flow=None):
        Recording.calls.append((frames.shape[1], teacher.clone(), self.detach_feedback))
        zero = sum(p.sum() for p in self.model.parameters()) * 0.0  # () in the graph, gradients 0
        return zero, zero.detach(), zero.detach()


@pytest.mark.filterwarnings("ignore:Data has no positive values")  # the plot of a zero loss
def test_the_bundled_recipes_options_reach_the_training_steps(data_root, tmp_path, monkeypatch):
    """``bundled``'s options (the horizon growing 1 -> 3 predicted frames over 2 epochs, teacher
    forcing drawn per step at 0.5) and ``detach_feedback``, through `train`: each epoch's windows have
    the curriculum's length, the teacher-forcing masks mix within a sequence, the loss detaches."""
    bundled = presets.training_preset("bundled")
    assert bundled.tf_mode == "step" and bundled.n_future_start == 10 and bundled.curriculum_epochs == 6
    monkeypatch.setattr(train_module, "SequenceLoss", Recording)
    Recording.calls = []
    cfg = presets.training_preset("tiny").replace(
        data_root=data_root, log_dir=tmp_path, name="run", progress=False, batch_size=2, val_sequences=2, epochs=3,
        epoch_size=4, n_future=3, n_future_start=1, curriculum_epochs=2, tf_mode="step", tfr=0.5,
        tfr_start_decay_epoch=10, tfr_lower_bound=0.5, detach_feedback=True, sample_every=0)
    train(cfg)
    assert [t for t, _, _ in Recording.calls] == [3] * 4 + [4] * 4 + [5] * 4  # n_past 2 + 1, 2, 3 predicted
    mixed = [bool(m.any() and not m.all()) for _, m, _ in Recording.calls]
    assert sum(mixed) >= 6  # drawn per step (a sequence of 3-5 draws at 0.5 is uniform 6-25 % of the time)
    assert all(detach for _, _, detach in Recording.calls)
    Recording.calls = []
    train(cfg.replace(name="seq", tf_mode="sequence", epochs=1, epoch_size=12, n_future_start=None, curriculum_epochs=0))
    assert all(m.all() or not m.any() for _, m, _ in Recording.calls)  # one draw per sequence
    assert len({bool(m[0]) for _, m, _ in Recording.calls}) == 2  # ... at 0.5: both outcomes
    assert {t for t, _, _ in Recording.calls} == {5}  # no curriculum: n_future from the start


def _loss(model, frames, conds, teacher, seed=0, **kw):
    torch.manual_seed(seed)  # the same posterior draws
    return SequenceLoss(model, n_past=2, **kw)(frames, conds, torch.tensor(1e-4), teacher)[0]


def _grads(model, frames, conds, teacher, **kw):
    model.zero_grad()
    loss = _loss(model, frames, conds, teacher, **kw)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_detach_feedback_cuts_only_the_gradient_through_fed_back_predictions():
    torch.manual_seed(0)
    model = SVG(model_preset("tiny"))
    frames, conds = torch.rand(2, 5, 3, 64, 64), torch.randn(2, 5, 7)
    free, forced = torch.zeros(5, dtype=torch.bool), torch.ones(5, dtype=torch.bool)
    for teacher, differs in ((free, True), (forced, False)):
        loss_a, grads_a = _grads(model, frames, conds, teacher)
        loss_b, grads_b = _grads(model, frames, conds, teacher, detach_feedback=True)
        assert torch.equal(loss_a, loss_b)  # the same forward pass
        same = all(torch.allclose(a, b) for a, b in zip(grads_a, grads_b))
        assert same != differs  # predictions fed back: other gradients; none fed back: the same


@pytest.mark.parametrize("weight", ["warp_weight", "flow_weight", "mask_weight"])
def test_each_motion_loss_weight_adds_its_term_in_proportion(weight):
    """loss(w) - loss(0) is > 0 and doubles with w: the option scales its term (the terms themselves
    are tested in tests/test_motion_path.py)."""
    torch.manual_seed(0)
    model = SVG(model_preset("tiny").replace(motion=True, context_mask=True, flow_head="pyramid", max_flow=8.0))
    frames, conds = torch.rand(2, 4, 3, 64, 64), torch.randn(2, 4, 7)
    labels = torch.zeros(2, 4, 64, 64, dtype=torch.uint8)
    labels[:, :, 10:20, 10:20] = 2  # an object
    flow = torch.zeros(2, 4, 2, 64, 64)
    flow[:, 1:, 0, 10:20, 10:20] = -2.0  # that moved 2 px a step
    teacher = torch.ones(4, dtype=torch.bool)
    loss = lambda w: SequenceLoss(model, 2, **{weight: w})(frames, conds, torch.tensor(0.0), teacher,  # noqa: E731
                                                            labels, flow)[0].item()
    torch.manual_seed(1)
    base = loss(0.0)
    torch.manual_seed(1)
    one = loss(0.1)
    torch.manual_seed(1)
    two = loss(0.2)
    assert one - base > 1e-6 and two - base == pytest.approx(2 * (one - base), rel=1e-3)


def test_arm_weight_weights_the_arms_pixels_time_major_and_needs_labels():
    """--arm-weight: the arm's pixels of x_1 .. x_{T-1} (labels == LABEL_ARM) count 1 + w times in the
    MSE, laid out time-major like the predictions; no arm in the labels leaves the MSE as it is."""
    from bair_world.sim.render import LABEL_ARM
    from bair_world.training.loss import arm_pixels

    labels = torch.zeros(2, 4, 64, 64, dtype=torch.uint8)
    labels[1, 2, 5:7, 8:11] = LABEL_ARM  # sequence 1, frame 2: 6 arm pixels
    arm = arm_pixels(labels)
    assert arm.shape == (3 * 2, 1, 64, 64) and arm.sum() == 6
    assert arm[1 * 2 + 1, 0, 5:7, 8:11].all()  # frame 2 is prediction step 1 (x_1 is step 0), row 1
    torch.manual_seed(0)
    model = SVG(model_preset("tiny"))
    frames, conds, teacher = torch.rand(2, 4, 3, 64, 64), torch.randn(2, 4, 7), torch.ones(4, dtype=torch.bool)

    def loss(w, lab):
        torch.manual_seed(1)
        return SequenceLoss(model, 2, arm_weight=w)(frames, conds, torch.tensor(0.0), teacher, lab)

    no_arm = loss(5.0, torch.zeros_like(labels))
    assert no_arm[0].item() == pytest.approx(no_arm[1].item(), rel=1e-6)  # loss == MSE (beta 0)
    assert loss(5.0, labels)[0].item() != pytest.approx(loss(0.0, labels)[0].item(), rel=1e-6)
    with pytest.raises(ValueError, match="arm_weight needs the data's labels"):
        loss(5.0, None)
    cfg = presets.training_preset("tiny").replace(arm_weight=1.0)
    assert cfg.needs_targets  # the data loader then reads the labels
    with pytest.raises(ValueError, match="arm_weight must be >= 0"):
        presets.training_preset("tiny").replace(arm_weight=-1.0)
