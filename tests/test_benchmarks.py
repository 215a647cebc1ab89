"""The benchmark scripts run and return their rows (smallest settings; the speeds are not judged).

Speed targets live in these scripts' tables, not in timed tests; this only keeps them runnable.
"""

from __future__ import annotations

import json
import math

import pytest
from helpers import load_script


def load(name: str):
    return load_script("benchmarks", name)


def test_bench_env_returns_every_row_and_prints_the_ratio_line(capsys):
    bench = load("bench_env")
    rows = bench.rows(None, "tiny", steps=4, repeats=2, sizes=[1, 3], modes=["eager"],
                      precisions=["float32", "bfloat16", "float16"])
    skipped = [r for r in rows if "skipped" in r]
    timed = [r for r in rows if "skipped" not in r and r["device"] == "cpu"]
    assert [(r["precision"]) for r in skipped if r["device"] == "cpu"] == ["float16"]
    assert [(r["precision"], r["mode"], r["env"], r["n"]) for r in timed] == [
        (p, "eager", env, n) for p in ("float32", "bfloat16") for env, n in (("single", None), ("vector N=1", 1),
                                                                            ("vector N=3", 3))]
    assert all(r["steps_s"] > 0 and r["ms_call"] > 0 for r in timed)
    assert all(r["x_single"] == 1.0 for r in timed if r["n"] is None)
    table = bench.format_table(rows, 3)
    assert "cpu    float16   skipped" in table and "fastest vector env N=3" in table
    argv = ["--preset", "tiny", "--steps", "1", "--repeats", "1", "--sizes", "1", "--modes", "eager",
            "--precisions", "float32", "--threads", "1"]
    assert bench.main(argv) == 0 and "fastest vector env N=1" in capsys.readouterr().out


def test_bench_env_rejects_unknown_modes_and_precisions():
    bench = load("bench_env")
    for argv in (["--modes", "jit"], ["--precisions", "float8"]):
        with pytest.raises(SystemExit):
            bench.main(argv)


def test_bench_synth_returns_throughput_cost_and_motion(capsys):
    bench = load("bench_synth")
    throughput, per_frame, motion = bench.rows(1)
    assert [(r["mode"], r["procs"], r["frames"]) for r in throughput] == [
        ("memory", 1, 30), ("memory", 2, 30), ("to disk", 1, 30), ("to disk", 2, 30)]
    assert all(r["wall_s"] > 0 and r["frames_per_s"] > 0 for r in throughput)
    assert [r["cpu_frames_per_s_proc"] is None for r in throughput] == [False, False, True, True]
    assert per_frame["physics_ms"] > 0 and per_frame["render_ms"] > 0 and motion.sequences == 1
    assert bench.main(["--sequences", "1"]) == 0 and "motion:" in capsys.readouterr().out


def test_bench_train_measures_a_preset_in_a_worker(tmp_path, capsys):
    bench = load("bench_train")
    rows = bench.rows(["tiny"], "cpu", iters=1, warmup=0, impls=["ours", "reference"])
    assert [(r["preset"], r["impl"], r["iters"], r["warmup"]) for r in rows] == [("tiny", "ours", 1, 0),
                                                                               ("tiny", "reference", 1, 0)]
    assert all(r["s_per_iter"] > 0 for r in rows) and rows[1]["speedup_vs_reference"] == 1.0
    out_json = tmp_path / "rows.json"
    argv = ["--presets", "tiny", "--iters", "1", "--warmup", "0", "--impls", "ours", "--json", str(out_json)]
    assert bench.main(argv) == 0
    assert [r["impl"] for r in json.loads(out_json.read_text())] == ["ours"] and "tiny" in capsys.readouterr().out


def test_ablation_table_scores_candidates_on_both_protocols(tmp_path, capsys):
    from helpers import make_tiny_checkpoint

    from bair_world.data.synthetic import write_dataset

    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    write_dataset(tmp_path / "data", {"train": 1, "validate": 2, "test": 1}, seed=3, workers=1, progress=False)
    out_json = tmp_path / "rows.json"
    argv = [f"tiny={ckpt}", f"again={ckpt}", "--data-root", str(tmp_path / "data"), "--max-sequences", "2",
            "--env-steps", "3", "--threads", "1", "--cf-starts", "2", "--json", str(out_json)]
    assert load("ablation_table").main(argv) == 0
    rows = json.loads(out_json.read_text())
    assert [r["name"] for r in rows] == ["copy-last-frame", "tiny", "again"]
    assert rows[1]["psnr_28"] == rows[2]["psnr_28"] and rows[1]["env_steps_s"] > 0  # same model, same score
    assert rows[1]["arm_last"] is not None and 0 < rows[1]["sharpness"] < 5
    assert rows[1]["push_psnr"] == rows[2]["push_psnr"] and 0 <= rows[1]["push_arrived"] <= 1
    assert rows[0]["push_arrived"] == 0 and rows[0]["sensitivity"] is None  # copy-last never moves an object
    assert "| tiny |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        load("ablation_table").main(["nonsense"])


def test_learning_curves_score_each_snapshot_once_and_print_the_table(tmp_path, capsys, monkeypatch):
    from helpers import make_tiny_checkpoint

    from bair_world.data.synthetic import write_dataset

    write_dataset(tmp_path / "data", {"train": 1, "validate": 2, "test": 0}, seed=3, workers=1, progress=False)
    run = tmp_path / "run-a"
    (run / "snapshots").mkdir(parents=True)
    (run / "train_config.json").write_text("{}")
    for step in (2, 4):
        make_tiny_checkpoint(run / "snapshots" / f"step-{step:06d}")
    # epochs of 2 steps, 1800 s each; the second logged twice (a resumed sitting redid it): counted once
    epochs = [{"step": 2, "epoch_s": 1800.0}, {"step": 4, "epoch_s": 900.0}, {"step": 4, "epoch_s": 1800.0},
              {"step": 6, "epoch_s": 1800.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in epochs))
    cache = tmp_path / "curves.jsonl"
    argv = [str(run), "--data-root", str(tmp_path / "data"), "--starts", "2", "--n-future", "3", "--every", "4",
            "--cache", str(cache), "--plot", str(tmp_path / "curves.png"), "--threads", "1"]
    script = load("learning_curves")
    assert script.main(argv) == 0
    rows = [json.loads(line) for line in cache.read_text().splitlines()]
    assert [r["step"] for r in rows] == [4]  # every 4 steps (and the last)
    assert 0 <= rows[0]["arrived_recall_free"] <= 1 and rows[0]["replay_psnr"] > 5
    assert rows[0]["hours"] == pytest.approx(1.0)  # training time up to step 4, not wall-clock
    assert rows[0]["random_psnr"] > 5 and 0 < rows[0]["replay_ssim"] <= 1
    assert math.isfinite(rows[0]["random_ssim_margin_min"]) and math.isfinite(rows[0]["objects_margin_push"])
    assert rows[0]["flow_cos_moving"] is None  # the tiny model has no motion output
    assert "| run-a | 4 |" in capsys.readouterr().out and (tmp_path / "curves.png").stat().st_size > 0
    monkeypatch.setattr(script, "score", lambda *a, **k: pytest.fail("a cached snapshot was scored again"))
    assert script.main(argv) == 0


def test_bench_planning_splits_one_call_per_row_and_rejects_bad_rows(capsys):
    bench = load("bench_planning")
    import torch

    from bair_world.models import SVG, model_preset

    torch.manual_seed(0)
    rows = bench.measure(SVG(model_preset("tiny")), bench.parse_rows("float32:1x6x2x2,bfloat16:2x6x1x2"),
                         history=1, repeats=1)
    assert [(r["precision"], r["batch"], r["frames"]) for r in rows] == [("float32", 6, 24), ("bfloat16", 12, 24)]
    for r in rows:
        assert r["call_s"] > 0 and r["ms_frame"] > 0 and 0.5 < sum(r["split"].values()) <= 1.0 + 1e-9
    assert rows[0]["x_first"] == 1.0 and "| bfloat16 | 2 x 6 x 1 x 2 |" in bench.format_table(rows)
    for bad in ("float8:1x6x2x2", "float32:1x6x2", ""):
        with pytest.raises(ValueError):
            bench.parse_rows(bad)
    assert bench.main(["--preset", "tiny", "--rows", "float32:1x4x1x1", "--history", "0", "--repeats", "1"]) == 0
    assert "| float32 | 1 x 4 x 1 x 1 |" in capsys.readouterr().out
