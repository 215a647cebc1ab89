"""Counterfactual evaluation: seeds recorded with synthetic data, the true world started from a
reference byte for byte, region / arrived / vacated / sensitivity metrics on hand-made frames, and the
`bair_world.counterfactual.evaluate` API on tiny data."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch
from helpers import FakeReferences, make_tiny_checkpoint, write_folder_dataset

from bair_world import counterfactual as cf
from bair_world import metrics, regions
from bair_world.data.seeds import recorded_seeds, sequence_seed
from bair_world.data.synthetic import write_dataset, write_packed
from bair_world.envs.push_world_env import start_world
from bair_world.envs.references import FolderReferences, SimReferences
from bair_world.sim import PushWorld, SimConfig, replay_world
from bair_world.sim.policy import CONCRETE_POLICIES, LOWER, POLICIES, NearestPusher, Sweeper
from bair_world.sim.render import LABEL_ARM, LABEL_OBJECTS

LENGTH = 10


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("cf")
    folder = write_dataset(root / "folder", {"test": 3}, workers=1, progress=False, length=LENGTH).root
    packed = write_packed(root / "packed", {"test": 3}, workers=1, progress=False, length=LENGTH).root
    return folder, packed, make_tiny_checkpoint(root / "ckpt")


def test_seeds_are_recorded_and_start_the_true_world_byte_for_byte(synth):
    folder, packed, _ = synth
    expected = [sequence_seed(0, "test", i) for i in range(3)]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["sequence_seeds"]["test"] == expected
    assert json.loads((packed / "packed.json").read_text())["source"]["sequence_seeds"]["test"] == expected
    for root in (folder, packed):
        assert recorded_seeds(root, "test") == expected
        starts = cf.load_starts(root, "test", length=LENGTH)
        for row in range(3):
            start, end = replay_world(starts.seed(row), starts.frames[row], 2, to_end=True)  # checks every frame
            assert np.array_equal(start.frame, starts.frames[row, 1]) and np.array_equal(end.frame, starts.frames[row, -1])
    refs = FolderReferences(packed, "test")  # the envs' reference source knows the seeds too
    ref, world, _ = start_world(refs, 2, 2)
    assert refs.seed(2) == expected[2] and np.array_equal(world.frame, ref.frames[1])
    with pytest.raises(RuntimeError, match="frame 0 differs"):
        replay_world(expected[0] + 1, starts.frames[0], 2)


def test_datasets_without_recorded_seeds_derive_them_and_real_data_has_none(synth, tmp_path):
    folder, _, _ = synth
    old = tmp_path / "old"
    old.mkdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["sequence_seeds"]  # written before seeds were recorded
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert recorded_seeds(old, "test") == recorded_seeds(folder, "test")
    real = write_folder_dataset(tmp_path / "real", {"test": 2})  # BAIR folders without a generator manifest
    assert recorded_seeds(real, "test") is None
    with pytest.raises(ValueError, match="no pushing-world seeds"):
        cf.load_starts(real, "test", length=30)


def test_sim_references_take_explicit_seeds(synth):
    folder, _, _ = synth
    seeds = recorded_seeds(folder, "test")
    refs = SimReferences(seeds=seeds, length=LENGTH)
    assert len(refs) == 3 and refs.seed(1) == seeds[1]
    starts = cf.load_starts(folder, "test", length=LENGTH)
    assert np.array_equal(refs[1].frames, starts.frames[1])
    assert SimReferences(size=4, seed_offset=7).seed(3) == 10


def test_references_are_defined_once_in_the_core_and_the_starts_read_through_them(synth):
    import bair_world.references as core
    from bair_world.envs import references as env_references

    assert env_references.FolderReferences is core.FolderReferences and env_references.SimReferences is core.SimReferences
    folder, packed, _ = synth
    for root in (folder, packed):
        refs = core.FolderReferences(root, "test", length=6)  # the first 6 of each sequence's 10 frames
        starts = cf.load_starts(root, "test", length=6)
        assert np.array_equal(starts.frames[2], refs[2].frames) and starts.names[2] == refs[2].rollout_id
        assert starts.seeds == [refs.seed(i) for i in range(3)] and starts.policy == refs.policy == "scripted"
    from_seeds = cf.load_starts(starts.seeds, length=6)  # seeds: the built-in world's references
    assert np.array_equal(from_seeds.frames, starts.frames) and from_seeds.names[0] == f"sim:seed={starts.seeds[0]}"
    with pytest.raises(ValueError, match="shorter than the 12 frames"):
        cf.load_starts(SimReferences(seeds=starts.seeds, length=6), length=12)


def _hand_made():
    """One row, two steps of 16x16 frames: an object (label 2) moves from columns 0-1 to 4-5 of row 0;
    the arm sits at (3, 3); an object under the arm in the context frame at (5, 5) shows at step t
    (revealed, not arrived), and the arm covers the object of (6, 6) at step t (covered, not vacated)."""
    ctx_labels = torch.zeros(1, 16, 16, dtype=torch.uint8)
    ctx_labels[0, 0, 0:2] = LABEL_OBJECTS
    ctx_labels[0, 5, 5], ctx_labels[0, 6, 6] = LABEL_ARM, LABEL_OBJECTS
    labels = torch.zeros(1, 2, 16, 16, dtype=torch.uint8)
    labels[0, :, 0, 4:6] = LABEL_OBJECTS
    labels[0, :, 3, 3] = LABEL_ARM
    labels[0, :, 5, 5], labels[0, :, 6, 6] = LABEL_OBJECTS, LABEL_ARM
    context = torch.zeros(1, 3, 16, 16)
    context[0, :, 0, 0:2] = 1.0  # a white object on black
    true = torch.zeros(1, 2, 3, 16, 16)
    true[0, :, :, 0, 4:6] = 1.0
    return ctx_labels, labels, context, true


def test_arrived_vacated_masks_recall_and_pooled_psnr_are_exact():
    ctx_labels, labels, context, true = _hand_made()
    moved = regions.moved_masks(labels, ctx_labels)
    assert moved["arrived"][0, 0].nonzero().tolist() == [[0, 4], [0, 5]]
    assert moved["vacated"][0, 0].nonzero().tolist() == [[0, 0], [0, 1]]
    pred = true.clone()
    pred[0, 0, :, 0, 5] = 0.3  # step 0: one arrived pixel left nearer the old background (0) than the object (1)
    pred[0, :, :, 0, 0] = 0.6  # both steps: one vacated pixel kept nearer the old object than the background
    ref = context[:, None].expand_as(true)
    hits, n = regions.closer_counts(pred, true, ref, moved["arrived"])
    assert hits.tolist() == [[1.0, 2.0]] and n.tolist() == [[2.0, 2.0]]
    hits, n = regions.closer_counts(pred, true, ref, moved["vacated"])
    assert hits.tolist() == [[1.0, 1.0]]
    assert regions.closer_counts(ref, true, ref, moved["arrived"])[0].sum() == 0  # copy-last never recalls
    sse, n = regions.masked_sse(pred, true, moved["vacated"])
    assert torch.allclose(sse, torch.tensor([[3 * 0.36, 3 * 0.36]], dtype=torch.float64)) and n.tolist() == [[6.0, 6.0]]
    assert regions.pooled_psnr(sse.sum(), n.sum()) == pytest.approx(10 * math.log10(12 / (6 * 0.36)))
    assert math.isnan(regions.pooled_psnr(0.0, 0.0))
    masks = regions.region_masks(torch.cat([ctx_labels[:, None], labels], 1), 1)
    assert masks["arm"][0, 0].sum() == 3 and masks["objects"][0, 0].sum() == 4  # union of frames t-1 and t
    frames, pooled = metrics.StepCurves(), regions.PooledCurves()
    cf.score(pred, true, labels, context, ctx_labels, frames, pooled)
    out = pooled.summary()
    assert out["arrived_recall"]["per_step"] == [0.5, 1.0] and out["arrived_recall"]["mean"] == 0.75
    assert out["vacated_recall"]["mean"] == 0.5


def test_action_sensitivity_is_the_psnr_difference():
    target = torch.full((1, 2, 3, 8, 8), 0.5)
    right, other = target + 0.1, target - 0.2  # PSNR 20 dB and 10 log10(25) dB
    got = cf.sensitivity_scores(right, other, target)
    assert torch.allclose(got, torch.full((1, 2), 20 - 10 * math.log10(25), dtype=got.dtype))


def test_nearest_pusher_moves_objects_in_the_true_world():
    world, pusher = PushWorld(sequence_seed(0, "test", 0)), NearestPusher(SimConfig())
    start, action = world.object_poses[:, :2].copy(), None
    for t in range(20):
        action = pusher.act(world.position, world.object_poses, world.radii) if t % 2 == 0 else action
        world.step(action, world.position)
    assert np.linalg.norm(world.object_poses[:, :2] - start, axis=1).max() > 0.05


def test_sweep_goes_lifted_to_one_end_then_sweeps_a_straight_line_through_the_objects():
    cfg = SimConfig()
    world, sweep = PushWorld(sequence_seed(0, "test", 0)), Sweeper(np.random.default_rng(0), cfg)
    start, action, swept = world.object_poses[:, :2].copy(), None, []
    for t in range(28):
        action = sweep.act(world.position, world.object_poses, world.radii) if t % 2 == 0 else action
        assert (action[3] == LOWER) == (sweep.leg > 0)  # lifted on the way to the line, lowered along it
        world.step(action, world.position)
        if sweep.leg > 0 and t % 2:
            swept.append(world.position[:2].copy())
    a, b = sweep.ends
    normal = np.array([a[1] - b[1], b[0] - a[0]]) / np.linalg.norm(b - a)
    assert abs((start.mean(0) - a) @ normal) < 1e-9  # the line runs through the objects' centroid
    assert np.abs((np.array(swept) - a) @ normal).max() < 0.02  # and the gripper stays on it
    assert sweep.leg >= 2 and np.linalg.norm(world.object_poses[:, :2] - start, axis=1).max() > 0.05


def test_sources_are_one_registry_the_clis_read_and_an_unknown_source_is_refused(synth):
    from bair_world.counterfactual_data import world_model
    from bair_world.rollout_cli import configure_parser
    from bair_world.training.eval_counterfactual import CHOICES, counterfactual_request

    _, packed, ckpt = synth
    assert cf.SOURCES == ("recorded", *CONCRETE_POLICIES) and "sweep" in cf.SOURCES and "sweep" in POLICIES
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    assert parser.parse_args(["--out", "x.gif", "--actions", "sweep"]).actions == "sweep"
    assert CHOICES == (*cf.SOURCES, "sensitivity") and counterfactual_request("sweep,push") == (("sweep", "push"), True)
    wm, n_past = world_model(ckpt)
    starts = cf.load_starts(packed, "test", count=2, length=6)
    with pytest.raises(ValueError, match=r"unknown action source.*'teleport'.*'sweep'"):
        cf.drive(wm, starts, [0, 1], "teleport", n_past, 4)  # once silently the push policy
    run = cf.drive(wm, starts, [0, 1], "sweep", n_past, 4)
    assert run["pred"].shape == (2, 4, 3, 64, 64) and set(run["conds"][:, 1:, 3].ravel()) <= {1.0, 2.0}  # after the held recorded row


def test_the_counterfactual_plot_draws_every_source_in_its_own_colour():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bair_world.training.eval_counterfactual import plot_counterfactual

    curve = {"psnr": {"per_step": [20.0, 19.0]}}
    motion = {"free_running": {region: {"warp": None, "cosine": None} for region in ("moving", "arrived")}}
    report = {"protocol": {"starts": 2}, "sources": {
        s: {"model": curve, "copy_last": curve, "one_step": curve, "motion": motion} for s in cf.SOURCES}}
    fig, axes = plt.subplots(2)
    plot_counterfactual(axes, report, [1, 2])
    colours = {line.get_label(): line.get_color() for line in axes[0].lines}
    assert len({colours[f"{s} (model)"] for s in cf.SOURCES}) == len(cf.SOURCES) == 5
    plt.close(fig)


def test_evaluate_api_reports_every_source_metric_and_copy_last(synth):
    _, packed, ckpt = synth
    report = cf.evaluate(ckpt, packed, count=2, n_future=4, batch_size=1, seed=1)
    assert set(report["sources"]) == set(cf.DEFAULT_SOURCES) and report["protocol"]["starts"] == 2
    for source, result in report["sources"].items():
        for name in (*cf.FRAME_METRICS, *cf.POOLED_METRICS):
            assert len(result["model"][name]["per_step"]) == len(result["one_step"][name]["per_step"]) == 4
            assert set(result["table"][name]) == set(cf.COLUMNS), (source, name)
        assert result["table"]["arrived_recall"]["copy_last"] in (0.0, None)
    assert len(report["sensitivity"]["sensitivity_db"]["per_step"]) == 4
    again = cf.evaluate(ckpt, packed, sources=("random",), count=2, n_future=4, batch_size=2, seed=1,
                        sensitivity=False)
    flat = lambda table: {(k, w): v for k, cell in table.items() for w, v in cell.items()}  # noqa: E731
    assert flat(again["sources"]["random"]["table"]) == pytest.approx(flat(report["sources"]["random"]["table"]),
                                                                      abs=1e-4)  # seeded, batch size free


def test_sensitivity_alone_works_on_data_without_seeds(synth):
    _, _, ckpt = synth
    report = cf.evaluate(ckpt, FakeReferences(size=3, length=8), sources=(), n_future=4)
    assert report["sources"] == {} and math.isfinite(report["sensitivity"]["sensitivity_db"]["mean"])
    with pytest.raises(ValueError, match="no pushing-world seeds"):
        cf.evaluate(ckpt, FakeReferences(size=3, length=8), sources=("push",), n_future=4)
    with pytest.raises(ValueError, match="unknown action source"):
        cf.CounterfactualConfig(sources=("teleport",))


def test_evaluate_cli_runs_the_counterfactual_sources_into_metrics_json(synth, tmp_path, capsys):
    from bair_world.training import evaluate as ev

    _, packed, ckpt = synth
    out = tmp_path / "eval"
    argv = ["--checkpoint", str(ckpt), "--data-root", str(packed), "--actions", "recorded,random,push",
            "--n-future", "4", "--short-n-future", "0", "--max-sequences", "2", "--device", "cpu", "--no-progress",
            "--out", str(out)]
    assert ev.main(argv) == 0
    printed = capsys.readouterr().out
    assert "arrived recall" in printed and "action sensitivity" in printed and "push model" in printed
    assert "one-step" in printed and "motion under push actions" in printed
    report = json.loads((out / "metrics.json").read_text())["counterfactual"]
    motion = report["sources"]["push"]["motion"]  # a model without motion: all on the generated branch
    assert motion["one_step"]["static"]["generated"]["mean"] == 1.0 and motion["free_running"]["static"]["flow"] is None
    assert list(report["sources"]) == ["recorded", "random", "push"] and report["protocol"]["starts"] == 2
    assert report["sources"]["push"]["table"]["arrived_recall"]["copy_last"] in (0.0, None)
    assert "sensitivity_db" in report["sensitivity"] and (out / "psnr_per_step.png").stat().st_size > 0


def test_evaluate_cli_refuses_sources_on_data_without_seeds_before_any_work(synth, tmp_path, capsys):
    from bair_world.training import evaluate as ev

    _, _, ckpt = synth
    real = write_folder_dataset(tmp_path / "real", {"test": 2})
    base = ["--checkpoint", str(ckpt), "--data-root", str(real), "--device", "cpu", "--no-progress",
            "--n-future", "4", "--out", str(tmp_path / "e")]
    assert ev.main([*base, "--actions", "push"]) == 2
    assert "no pushing-world seeds" in capsys.readouterr().err and not (tmp_path / "e").exists()
    assert ev.main([*base, "--actions", "sensitivity"]) == 0  # works on any data
    assert "action sensitivity" in capsys.readouterr().out
    assert ev.main([*base, "--actions", "sensitivity", "--max-sequences", "1"]) == 2  # refused before any work
    assert "at least 2 sequences" in capsys.readouterr().err
    assert ev.main([*base, "--actions", "teleport"]) == 2
    assert "unknown source" in capsys.readouterr().err


def test_rollout_cli_writes_a_counterfactual_video_whose_frames_are_the_panels(synth, tmp_path, capsys):
    import imageio.v3 as iio

    from bair_world import cli, video

    _, packed, ckpt = synth
    out = tmp_path / "push.gif"
    argv = ["rollout", "--checkpoint", str(ckpt), "--out", str(out), "--data-root", str(packed), "--index", "1",
            "--actions", "push", "--n-future", "4", "--scale", "1", "--device", "cpu"]
    assert cli.main(argv) == 0
    assert "against the true world under push actions" in capsys.readouterr().out
    true, pred = cf.rollout(ckpt, packed, index=1, source="push", n_future=4, device="cpu")
    starts = cf.load_starts(packed, "test", length=6, only=1)
    assert true.shape == pred.shape == (6, 64, 64, 3) and np.array_equal(true[:2], starts.frames[0, :2])
    assert not np.array_equal(true[2:], starts.frames[0, 2:])  # the true world did what the push commanded
    composed = video.compose_rollout_frames(true, pred, n_context=2, scale=1, reference_title="true world")
    back = iio.imread(out, index=None)[..., :3]  # (T, H, W, 3)
    assert back.shape == composed.shape
    assert np.abs(back.astype(float) - composed).mean() < 3  # GIF palette error only
    x0 = [j * (64 + 4) + 2 for j in range(3)]  # true | model | error panels (border 2 at scale 1)
    top = (composed.shape[1] - 64 - 4) // 2 + 2
    for j, frames in zip(x0, (true, pred)):
        panel = back[:, top:top + 64, j:j + 64].astype(float)
        assert np.abs(panel - frames).mean() < 6
