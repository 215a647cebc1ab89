"""WorldModel: batched == single rollouts with per-row seeds, partial reset/step, rollout, errors."""

import numpy as np
import pytest
import torch

from bair_world.models import SVG, model_preset
from bair_world.data.batch import frames_to_uint8
from bair_world.world_model import WorldModel

N, T = 3, 6


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = SVG(model_preset("tiny", prior="learned", skip="last_context"))
    m.set_normalisation(torch.tensor([0, 0, 1, 1, 0.6, 0, 0.25]), torch.tensor([0.05, 0.05, 1, 1, 0.1, 0.1, 0.03]))
    return m


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    return torch.rand(N, T, 3, 64, 64, generator=g), torch.randn(N, T, 7, generator=g) * 0.05


def gens(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_batched_equals_single_envs_with_same_seeds(model, data):
    frames, conds = data
    seeds = [11, 22, 33]
    batched = WorldModel(model)
    g = gens(seeds)
    batched.reset(frames[:, :2], conds[:, :1], g)
    out_b = torch.stack([batched.step(conds[:, t], g) for t in range(1, 4)], 1)  # (N, 3, C, H, W)
    for i, s in enumerate(seeds):
        single = WorldModel(model)
        gi = torch.Generator().manual_seed(s)
        single.reset(frames[i:i + 1, :2], conds[i:i + 1, :1], gi)
        out_s = torch.stack([single.step(conds[i:i + 1, t], gi) for t in range(1, 4)], 1)
        torch.testing.assert_close(out_b[i:i + 1], out_s, atol=1e-5, rtol=0)
    assert out_b.min() >= 0 and out_b.max() <= 1 and out_b.shape == (N, 3, 3, 64, 64)


def test_seed_fixes_the_rollout_and_different_seeds_differ(model, data):
    frames, conds = data
    wm = WorldModel(model)
    a = wm.rollout(frames, conds, 3, gens([1, 2, 3]))
    b = wm.rollout(frames, conds, 3, gens([1, 2, 3]))
    c = wm.rollout(frames, conds, 3, gens([4, 5, 6]))
    assert a.shape == (N, 3, 3, 64, 64) and torch.equal(a, b) and not torch.equal(a, c)
    shared = wm.rollout(frames, conds, 3, torch.Generator().manual_seed(1))  # one generator for all rows
    assert shared.shape == a.shape and not a.requires_grad


def test_partial_reset_matches_a_fresh_single_row(model, data):
    frames, conds = data
    wm = WorldModel(model)
    wm.reset(frames[:, :2], conds[:, :1], gens([1, 2, 3]))
    for t in range(1, 3):
        wm.step(conds[:, t], gens([10 + t, 20 + t, 30 + t]))
    before = wm.last_frame.clone()
    new_ctx = frames.flip(0)[:1]  # a different episode for row 1
    last = wm.reset(new_ctx[:, :2], conds[:1, :1], gens([7]), rows=torch.tensor([False, True, False]))
    torch.testing.assert_close(last, new_ctx[:, 1])
    assert torch.equal(wm.last_frame[0], before[0]) and torch.equal(wm.state.t, torch.tensor([3, 1, 3]))
    stepped = wm.step(conds[:, 3], gens([40, 41, 42]))

    fresh = WorldModel(model)
    fresh.reset(new_ctx[:, :2], conds[:1, :1], gens([7]))
    torch.testing.assert_close(stepped[1:2], fresh.step(conds[1:2, 3], gens([41])), atol=1e-5, rtol=0)


def test_step_only_some_rows(model, data):
    frames, conds = data
    wm = WorldModel(model)
    wm.reset(frames[:, :2], conds[:, :1], gens([1, 2, 3]))
    t_before, last0 = wm.state.t.clone(), wm.last_frame[0].clone()
    out = wm.step(conds[[1, 2], 1], gens([5, 6]), rows=[1, 2])
    assert out.shape == (2, 3, 64, 64)
    assert wm.state.t.tolist() == [t_before[0].item(), t_before[1].item() + 1, t_before[2].item() + 1]
    assert torch.equal(wm.last_frame[0], last0) and torch.equal(wm.last_frame[1:], out)


def test_repeat_rows_copies_each_row_in_place(model, data):
    frames, conds = data
    wm = WorldModel(model)
    wm.reset(frames[:, :2], conds[:, :1], gens([1, 2, 3]))
    wm.step(conds[:, 1], gens([4, 5, 6]))
    ref = WorldModel(model)
    ref.reset(frames[:, :2], conds[:, :1], gens([1, 2, 3]))
    ref.step(conds[:, 1], gens([4, 5, 6]))
    wm.repeat_rows(2)  # rows 0, 0, 1, 1, 2, 2
    ref.select_rows(torch.arange(N).repeat_interleave(2))
    assert wm.batch_size == 2 * N and torch.equal(wm.state.t, ref.state.t)
    cond = conds[:, 2].repeat_interleave(2, 0)  # (N, 7) -> (2N, 7)
    torch.testing.assert_close(wm.step(cond, gens(range(2 * N))), ref.step(cond, gens(range(2 * N))), atol=0, rtol=0)
    with pytest.raises(ValueError, match="times must be an int >= 1"):
        wm.repeat_rows(0)


def test_errors(model, data):
    frames, conds = data
    wm = WorldModel(model)
    with pytest.raises(RuntimeError, match="before reset"):
        wm.step(conds[:, 0])
    with pytest.raises(ValueError, match="context_conds"):
        wm.reset(frames[:, :2], conds[:, :2])
    with pytest.raises(ValueError, match="context_frames"):
        wm.reset(frames[:, :2, :, :32], conds[:, :1])
    wm.reset(frames[:, :2], conds[:, :1])
    with pytest.raises(ValueError, match="rows"):
        wm.reset(frames[:1, :2], conds[:1, :1], rows=[5])
    with pytest.raises(ValueError, match="2 rows to step"):
        wm.step(conds[:, 0], rows=[0, 1])
    with pytest.raises(ValueError, match="per-row generators"):
        wm.step(conds[:, 0], gens([1]))
    with pytest.raises(ValueError, match="conds"):
        wm.rollout(frames, conds, 10)


def test_frames_to_uint8():
    x = torch.tensor([0.0, 0.5, 1.0, 1.2]).reshape(1, 1, 4).expand(3, 1, 4)  # (3, 1, 4): C, H, W
    out = frames_to_uint8(x)
    assert out.dtype == np.uint8 and out.shape == (1, 4, 3)
    assert out[0, :, 0].tolist() == [0, 128, 255, 255]


# -- reduced precision ---------------------------------------------------------------------------

def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / (a - b).pow(2).mean()))


@pytest.fixture(scope="module")
def lively():
    """PyTorch's default init (not SVG's N(0, 0.02)): frames that vary, so a tolerance means something."""
    torch.manual_seed(0)
    m = SVG(model_preset("tiny", prior="learned", skip="last_context"))
    for module in m.modules():
        if module is not m and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    m.set_normalisation(torch.tensor([0, 0, 1, 1, 0.6, 0, 0.25]), torch.tensor([0.05, 0.05, 1, 1, 0.1, 0.1, 0.03]))
    return m


def test_bfloat16_on_cpu_is_close_to_float32_and_keeps_float32_state(lively, data):
    frames, conds = data
    exact = WorldModel(lively).rollout(frames, conds, 4, gens([1, 2, 3]))
    wm = WorldModel(lively, precision="bfloat16")
    fast = wm.rollout(frames, conds, 4, gens([1, 2, 3]))
    assert fast.dtype == torch.float32 and fast.shape == exact.shape
    assert 0 <= fast.min() and fast.max() <= 1 and exact.std() > 0.02  # frames with content
    assert _psnr(fast, exact) > 45, "bf16 frames must stay within a tight tolerance of float32 (measured 61 dB)"
    assert (fast - exact).abs().max() < 0.02
    assert not torch.equal(fast, exact)  # it did run in bf16
    leaves = [x for pair in wm.state.predictor + wm.state.posterior + wm.state.prior for x in pair] + wm.state.skips
    assert all(x.dtype == torch.float32 for x in leaves) and wm.last_frame.dtype == torch.float32


def test_bfloat16_same_seed_same_frames_and_rows_step_alone(model, data):
    frames, conds = data
    wm = WorldModel(model, precision="bfloat16")
    a = wm.rollout(frames, conds, 3, gens([1, 2, 3]))
    b = wm.rollout(frames, conds, 3, gens([1, 2, 3]))
    c = wm.rollout(frames, conds, 3, gens([4, 5, 6]))
    assert torch.equal(a, b) and not torch.equal(a, c)
    last0 = wm.last_frame[0].clone()
    out = wm.step(conds[[1, 2], 4], gens([5, 6]), rows=[1, 2])  # merges a float32 sub-state
    assert out.shape == (2, 3, 64, 64) and out.dtype == torch.float32
    assert torch.equal(wm.last_frame[0], last0) and wm.state.t.tolist() == [4, 5, 5]


def test_float32_is_unchanged_after_a_bfloat16_world_shared_the_model(model, data):
    frames, conds = data
    before = WorldModel(model).rollout(frames, conds, 3, gens([1, 2, 3]))
    WorldModel(model, precision="bfloat16").rollout(frames, conds, 3, gens([1, 2, 3]))  # NHWC in place
    after = WorldModel(model).rollout(frames, conds, 3, gens([1, 2, 3]))
    assert torch.equal(before, after)


@pytest.mark.parametrize("precision, device, match", [
    ("float64", "cpu", r"one of \['bfloat16', 'float16', 'float32'\]"),
    ("bf16", "cpu", "precision must be one of"),
    ("float16", "cpu", "float16' runs on cuda devices, not 'cpu'; on cpu use one of"),
    ("bfloat16", "meta", "runs on cpu or cuda devices"),
])
def test_bad_precision_names_the_allowed_values(model, precision, device, match):
    with pytest.raises(ValueError, match=match):
        WorldModel(model, device, precision=precision)


def test_compiled_step_matches_eager_with_the_same_latents(model, data):
    """compile=True (torch.compile of the prior step): same frames to float rounding, same seeds, any row subset."""
    frames, conds = data
    eager = WorldModel(model).rollout(frames, conds, 3, gens([1, 2, 3]))
    compiled = WorldModel(model, compile=True)
    assert compiled.compiled
    out = compiled.rollout(frames, conds, 3, gens([1, 2, 3]))
    torch.testing.assert_close(out, eager, atol=1e-5, rtol=0)
    assert not torch.equal(out, compiled.rollout(frames, conds, 3, gens([4, 5, 6])))
    g = gens([7, 8, 9])
    compiled.reset(frames[:, :2], conds[:, :1], g)
    part = compiled.step(conds[1:2, 2], [g[1]], rows=[1])  # batch of 1: compiled again for that size
    single = WorldModel(model)
    g1 = torch.Generator().manual_seed(8)
    single.reset(frames[1:2, :2], conds[1:2, :1], g1)
    torch.testing.assert_close(part, single.step(conds[1:2, 2], g1), atol=1e-5, rtol=0)


def test_compile_without_a_working_compiler_says_what_to_do(data, tmp_path):
    """A machine without a C++ compiler gets a clear error naming compile=False, not inductor internals."""
    import torch._inductor.config as inductor_config

    torch.manual_seed(5)
    frames, conds = data
    wm = WorldModel(SVG(model_preset("tiny", g_dim=24)), compile=True)  # a graph no earlier test compiled
    wm.reset(frames[:1, :2], conds[:1, :1])
    # (torch's config objects must be patched with their own context manager, not monkeypatch)
    with inductor_config.patch({"fx_graph_cache": False, "cpp.cxx": (None, str(tmp_path / "no-such-compiler"))}):
        with pytest.raises(RuntimeError, match="compile=False"):
            wm.step(conds[:1, 2])

