"""The benchmark scripts run and print their tables (smallest settings; the numbers are not judged).

Speed targets live in these scripts' tables, not in timed tests; this only keeps them runnable.
"""

from __future__ import annotations

import json

import pytest
from helpers import load_script


def load(name: str):
    return load_script("benchmarks", name)


def test_bench_env_prints_every_row_and_the_ratio_line(capsys):
    argv = ["--preset", "tiny", "--steps", "4", "--repeats", "2", "--sizes", "1,3", "--modes", "eager",
            "--precisions", "float32,bfloat16,float16", "--threads", "1"]
    assert load("bench_env").main(argv) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("cpu ") and "skipped" not in line]
    assert [r[3:5] if r[3] == "vector" else r[3:4] for r in rows] == [["single"], ["vector", "N=1"], ["vector", "N=3"]] * 2
    assert all(float(r[-3]) > 0 for r in rows)  # steps/s
    assert "float16   skipped" in out and "fastest vector env N=3" in out


def test_bench_env_rejects_unknown_modes_and_precisions():
    bench = load("bench_env")
    for argv in (["--modes", "jit"], ["--precisions", "float8"]):
        with pytest.raises(SystemExit):
            bench.main(argv)


def test_bench_synth_prints_throughput_and_motion(capsys):
    assert load("bench_synth").main(["--sequences", "1"]) == 0
    out = capsys.readouterr().out
    assert "memory" in out and "to disk" in out and "per frame" in out and "motion:" in out


def test_bench_train_measures_a_preset_in_a_worker(tmp_path, capsys):
    out_json = tmp_path / "rows.json"
    argv = ["--presets", "tiny", "--iters", "1", "--warmup", "0", "--json", str(out_json)]
    assert load("bench_train").main(argv) == 0
    rows = json.loads(out_json.read_text())
    assert rows[0]["preset"] == "tiny" and rows[0]["s_per_iter"] > 0
    assert "tiny" in capsys.readouterr().out


def test_ablation_table_scores_candidates_on_both_protocols(tmp_path, capsys):
    from helpers import make_tiny_checkpoint

    from bair_world.data.bair_folder import write_sequence
    from bair_world.sim import rollout

    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    for i in range(2):
        r = rollout(100 + i, labels=True)
        write_sequence(tmp_path / "data" / "validate" / "traj_0" / str(i), r.frames, r.actions, r.positions,
                       labels=r.labels)
    out_json = tmp_path / "rows.json"
    argv = [f"tiny={ckpt}", f"again={ckpt}", "--data-root", str(tmp_path / "data"), "--max-sequences", "2",
            "--env-steps", "3", "--threads", "1", "--json", str(out_json)]
    assert load("ablation_table").main(argv) == 0
    rows = json.loads(out_json.read_text())
    assert [r["name"] for r in rows] == ["copy-last-frame", "tiny", "again"]
    assert rows[1]["psnr_28"] == rows[2]["psnr_28"] and rows[1]["env_steps_s"] > 0  # same model, same score
    assert rows[1]["arm_last"] is not None and 0 < rows[1]["sharpness"] < 5
    assert "| tiny |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        load("ablation_table").main(["nonsense"])
