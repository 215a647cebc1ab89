"""SVG model: shapes, priors, skip policies, KL, explicit state, determinism, learning."""

import gc

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from bair_world.models import SVG, GaussianLSTM, ModelConfig, model_preset, standard_normal
from bair_world.models.svg import kl_gaussian

B = 2


def make(**overrides) -> SVG:
    torch.manual_seed(0)
    return SVG(model_preset("tiny", **overrides))


def frames(n=B, seed=1):
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def conds(n=B, seed=2):
    return torch.randn(n, 7, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("backbone,width", [("dcgan", 0.25), ("vgg", 0.125)])
@pytest.mark.parametrize("prior", ["fixed", "learned"])
def test_step_shapes_and_ranges(backbone, width, prior):
    model = make(backbone=backbone, width=width, prior=prior)
    state = model.init_state(B)
    out = model.step(state, frames(), conds(), x_next=frames(seed=3))
    assert out.frame.shape == (B, 3, 64, 64)
    assert out.frame.min() >= 0 and out.frame.max() <= 1
    assert out.kl.shape == (B,) and out.mu.shape == (B, 8) and out.logvar.shape == (B, 8)
    assert (out.kl > 0).all()
    assert out.state.t.tolist() == [1, 1]
    gen = model.step(out.state, out.frame, conds(), generator=torch.Generator().manual_seed(0))
    assert gen.frame.shape == (B, 3, 64, 64) and torch.equal(gen.kl, torch.zeros(B))
    assert gen.mu is None and gen.state.t.tolist() == [2, 2]
    assert (gen.prior_mu is not None) == (prior == "learned")


def test_kl_closed_form_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    mu_p, logvar_p = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    q, p = Normal(mu, (0.5 * logvar).exp()), Normal(mu_p, (0.5 * logvar_p).exp())
    std_normal = Normal(torch.zeros(4, 5), torch.ones(4, 5))
    torch.testing.assert_close(kl_gaussian(mu, logvar), kl_divergence(q, std_normal).sum(-1))
    torch.testing.assert_close(kl_gaussian(mu, logvar, mu_p, logvar_p), kl_divergence(q, p).sum(-1))
    # A known case by hand: mu = 1, var = 1 in each of 3 dims -> 3 * 0.5 = 1.5; identical Gaussians -> 0.
    assert kl_gaussian(torch.ones(1, 3), torch.zeros(1, 3)).item() == pytest.approx(1.5)
    assert kl_gaussian(mu, logvar, mu, logvar).abs().max() < 1e-6


@pytest.mark.parametrize("prior", ["fixed", "learned"])
def test_step_kl_is_kl_of_returned_distributions(prior):
    model = make(prior=prior).eval()
    out = model.step(model.init_state(B), frames(), conds(), x_next=frames(seed=3))
    torch.testing.assert_close(out.kl, kl_gaussian(out.mu, out.logvar, out.prior_mu, out.prior_logvar))


def test_skip_policies():
    x0, x1, x2, x3 = (frames(seed=s) for s in range(4))
    for skip in ("last_context", "previous"):
        model = make(skip=skip, n_past=2).eval()
        s1 = model.step(model.init_state(B), x0, conds(), x_next=x1).state  # t=0: context
        s2 = model.step(s1, x1, conds(), x_next=x2).state  # t=1: the last context frame x1
        s3 = model.step(s2, x2, conds()).state  # t=2: a predicted step
        assert not torch.equal(s1.skips[0], s2.skips[0])  # both policies take x1's skips
        assert torch.equal(s2.skips[0], s3.skips[0]) == (skip == "last_context")
    # Per row: a row still in its context updates, a row past it keeps its skips.
    model = make(skip="last_context", n_past=2).eval()
    state = model.step(model.init_state(B), x0, conds(), x_next=x1).state
    state.t = torch.tensor([1, 2])
    new = model.step(state, x3, conds()).state
    assert not torch.equal(new.skips[0][0], state.skips[0][0])
    assert torch.equal(new.skips[0][1], state.skips[0][1])


def test_state_is_explicit_interleaved_batches_match_separate_runs():
    model = make(prior="learned").eval()
    a = [frames(seed=s) for s in range(4)]
    b = [frames(seed=10 + s) for s in range(4)]

    def run(xs, state, t, seed):
        return model.step(state, xs[t], conds(), x_next=xs[t + 1], generator=torch.Generator().manual_seed(seed))

    sa, sb = model.init_state(B), model.init_state(B)
    for t in range(3):  # interleaved: a, b, a, b, ...
        oa, ob = run(a, sa, t, t), run(b, sb, t, 100 + t)
        sa, sb = oa.state, ob.state
    sep = model.init_state(B)
    for t in range(3):
        sep = run(a, sep, t, t).state
    out_a = model.step(sa, a[3], conds(), generator=torch.Generator().manual_seed(9))
    out_sep = model.step(sep, a[3], conds(), generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(out_a.frame, out_sep.frame, rtol=0, atol=0)


def test_determinism_with_seeded_generator():
    model = make(prior="fixed").eval()
    state = model.init_state(B)

    def sample(seed):
        return model.step(state, frames(), conds(), generator=torch.Generator().manual_seed(seed)).frame

    assert torch.equal(sample(5), sample(5))
    assert not torch.equal(sample(5), sample(6))


@pytest.mark.parametrize("prior", ["fixed", "learned"])
def test_predrawn_noise_gives_exactly_the_generator_path(prior):
    """``noise=`` (what WorldModel passes, to keep generator calls out of a compiled step) changes nothing."""
    model = make(prior=prior).eval()
    state = model.init_state(B)
    with torch.no_grad():
        a = model.step(state, frames(), conds(), generator=torch.Generator().manual_seed(3))
        eps = standard_normal(torch.empty(B, model.cfg.z_dim), torch.Generator().manual_seed(3))
        b = model.step(state, frames(), conds(), noise=eps)
        assert torch.equal(a.frame, b.frame) and torch.equal(a.z, b.z)
        post = model.step(state, frames(), conds(), x_next=frames(), noise=eps)  # posterior sample uses it too
        assert torch.equal(post.z, post.mu + torch.exp(0.5 * post.logvar) * eps)
        with pytest.raises(ValueError, match="noise must be"):
            model.step(state, frames(), conds(), noise=eps[:, :-1])


def test_per_row_generators_match_single_draws():
    like = torch.empty(3, 4)
    rows = standard_normal(like, [torch.Generator().manual_seed(s) for s in (7, 8, 9)])
    for i, s in enumerate((7, 8, 9)):
        torch.testing.assert_close(rows[i:i + 1], standard_normal(torch.empty(1, 4), torch.Generator().manual_seed(s)))
    with pytest.raises(ValueError, match="per-row generators"):
        standard_normal(like, [torch.Generator()])


def test_gaussian_lstm_no_sample_leaves_generator_untouched():
    cell = GaussianLSTM(4, 3, 8, 1)
    g = torch.Generator().manual_seed(0)
    before = g.get_state()
    (z, mu, _), _ = cell(torch.randn(2, 4), cell.init_state(2), g, sample=False)
    assert torch.equal(z, mu) and torch.equal(g.get_state(), before)


def test_step_takes_raw_units_and_normalises_inside():
    raw = conds() * torch.tensor([0.05, 0.05, 1, 1, 0.1, 0.1, 0.03]) + torch.tensor([0, 0, 1, 1, 0.6, 0, 0.25])
    mean, std = torch.tensor([0, 0, 1, 1, 0.6, 0, 0.25]), torch.tensor([0.05, 0.05, 1, 1, 0.1, 0.1, 0.03])
    model = make().eval()
    plain = model.step(model.init_state(B), frames(), (raw - mean) / std, generator=torch.Generator().manual_seed(0))
    model.set_normalisation(mean, std)
    normed = model.step(model.init_state(B), frames(), raw, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(plain.frame, normed.frame)
    model.fit_normalisation(torch.stack([raw, raw + 1]))  # (2, B, 7)
    torch.testing.assert_close(model.cond_mean, raw.mean(0) + 0.5)
    with pytest.raises(ValueError, match="NaN"):
        model.set_normalisation(torch.full((7,), float("nan")), torch.ones(7))
    model.set_normalisation(torch.zeros(7), torch.zeros(7))  # constant columns: std 1, not inf
    assert torch.equal(model.cond_std, torch.ones(7))


def test_residual_variant_copies_last_frame_when_decoder_is_silent():
    model = make(residual=True).eval()
    torch.nn.init.zeros_(model.decoder.upc5.weight)
    torch.nn.init.zeros_(model.decoder.upc5.bias)
    x = frames().clamp(0.01, 0.99)
    out = model.step(model.init_state(B), x, conds())
    torch.testing.assert_close(out.frame, x, atol=1e-5, rtol=0)


def test_bad_input_and_config_errors():
    model = make()
    state = model.init_state(B)
    with pytest.raises(ValueError, match="x_prev"):
        model.step(state, torch.rand(B, 3, 32, 32), conds())
    with pytest.raises(ValueError, match="cond"):
        model.step(state, frames(), torch.randn(B, 4))
    with pytest.raises(ValueError, match="x_prev"):
        model.step(model.init_state(3), frames(), conds())
    with pytest.raises(ValueError, match="needs x_next"):
        model.step(state, frames(), conds(), use_posterior=True)
    with pytest.raises(ValueError, match="backbone"):
        ModelConfig(backbone="resnet")
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        ModelConfig.from_dict({"backbone": "vgg", "colour": 1})
    with pytest.raises(ValueError, match="unknown model preset"):
        model_preset("huge")
    assert ModelConfig.from_dict(model_preset("seed").to_dict()) == model_preset("seed")


def test_weight_init_follows_svg():
    model = SVG(model_preset("tiny", width=1.0))
    conv = model.encoder.c2[0].weight
    bn = model.encoder.c2[1].weight
    assert abs(conv.std().item() - 0.02) < 0.002 and abs(conv.mean().item()) < 0.002
    assert abs(bn.mean().item() - 1.0) < 0.01 and 0.005 < bn.std().item() < 0.04


def test_one_optimiser_step_reduces_the_loss_on_a_fixed_batch():
    model = make(prior="learned").train()
    seq = torch.rand(4, 4, 3, 64, 64, generator=torch.Generator().manual_seed(0))  # (B, T, C, H, W)
    cond = torch.randn(4, 4, 7, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def loss_fn():
        state, loss, g = model.init_state(4), 0.0, torch.Generator().manual_seed(3)
        for t in range(3):
            out = model.step(state, seq[:, t], cond[:, t], x_next=seq[:, t + 1], generator=g)
            loss = loss + torch.nn.functional.mse_loss(out.frame, seq[:, t + 1]) + 1e-4 * out.kl.mean()
            state = out.state
        return loss

    before = loss_fn()
    opt.zero_grad()
    before.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if not n.startswith("prior.embed"))
    opt.step()
    with torch.no_grad():
        after = loss_fn()
    assert after.item() < before.item()


def test_channels_last_and_autocast():
    model = make(prior="learned").eval().to(memory_format=torch.channels_last)
    x = frames().contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.step(model.init_state(B), x, conds(), x_next=x)
        out2 = model.step(out.state, out.frame, conds())
    assert out.kl.dtype == torch.float32 and torch.isfinite(out.kl).all()
    assert out2.frame.shape == (B, 3, 64, 64) and torch.isfinite(out2.frame.float()).all()


def test_presets_sizes():
    counts = {name: SVG(model_preset(name)).parameter_count() for name in ("tiny", "cpu")}
    assert counts["tiny"] < counts["cpu"] < 5_000_000
    seed = model_preset("seed")
    assert (seed.backbone, seed.g_dim, seed.z_dim, seed.rnn_size, seed.prior, seed.skip) == (
        "vgg", 128, 64, 256, "fixed", "previous")


def test_ddp_wrapped_model_steps_over_time_and_backpropagates(tmp_path):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    ddp = None
    try:
        model = make()
        ddp = DistributedDataParallel(model)
        state, loss = model.init_state(B), 0.0
        xs = [frames(seed=s) for s in range(3)]
        for t in range(2):  # one DDP forward per time step, then one backward
            out = ddp(state, xs[t], conds(), xs[t + 1])
            loss = loss + (out.frame - xs[t + 1]).pow(2).mean() + out.kl.mean()
            state = out.state
        loss.backward()
        assert model.encoder.c1[0].weight.grad.abs().sum() > 0
    finally:
        # the DDP reducer holds the process group: release it first (destroying the group under a live
        # reducer left its gloo threads to be joined at the function's end, which once hung the suite)
        del ddp
        gc.collect()
        dist.destroy_process_group()


def test_warp_moves_pixels_by_the_flow_in_pixels():
    from bair_world.models.motion import warp

    x = torch.rand(2, 3, 64, 64)
    flow = torch.zeros(2, 2, 64, 64)
    torch.testing.assert_close(warp(x, flow), x, atol=1e-5, rtol=0)
    flow[:, 0], flow[:, 1] = 2.0, -1.0  # out[y, x] = x[y - 1, x + 2]
    torch.testing.assert_close(warp(x, flow)[..., 1:, :-2], x[..., :-1, 2:], atol=1e-5, rtol=0)


@pytest.mark.parametrize("backbone", ["dcgan", "vgg"])
def test_pixel_motion_model_starts_as_the_plain_model_and_learns_its_head(backbone):
    """motion=True adds a flow + mask head whose initial output keeps the plain model's frames
    (mask ~0), so a plain checkpoint can be fine-tuned into it; its head receives gradients."""
    torch.manual_seed(0)
    cfg = model_preset("tiny").replace(backbone=backbone, residual=True)
    plain, moving = SVG(cfg).eval(), SVG(cfg.replace(motion=True)).eval()
    missing, unexpected = moving.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == [] and missing and all(k.startswith("motion_head.") for k in missing)
    x, cond = torch.rand(2, 3, 64, 64), torch.randn(2, 7)
    a = plain.step(plain.init_state(2), x, cond, generator=torch.Generator().manual_seed(0)).frame
    b = moving.step(moving.init_state(2), x, cond, generator=torch.Generator().manual_seed(0)).frame
    assert (a - b).abs().max() < 0.01 and 0 <= b.min() and b.max() <= 1
    moving.step(moving.init_state(2), x, cond, x_next=torch.rand(2, 3, 64, 64)).frame.mean().backward()
    last = list(moving.motion_head.parameters())[-2:]  # the zero-initialised output layer's weight and bias
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in last)
