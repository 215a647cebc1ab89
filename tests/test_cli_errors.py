"""Every mistake is one line naming the argument or file, exit status 2, and no work or file before it."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from helpers import FakeReferences, make_tiny_checkpoint
from helpers import write_folder_dataset

import bair_world  # noqa: F401  (registers BairWorld-v0)
from bair_world.cli import main as cli_main
from bair_world.data import default_data, synthetic
from bair_world.training.evaluate import main as evaluate_main
from bair_world.training.reporting import RunReporter
from bair_world.training.train import main as train_cli


def one_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty BAIR_WORLD_CACHE: a test asserts that nothing was generated into it."""
    monkeypatch.setenv("BAIR_WORLD_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_rollout_of_a_missing_checkpoint_generates_nothing(cache, tmp_path, capsys):
    assert cli_main(["rollout", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "r.mp4")]) == 2
    assert one_line(capsys) == f"bair-world rollout: error: {tmp_path / 'nope'}: no such checkpoint directory"
    assert not cache.exists() and not (tmp_path / "r.mp4").exists()


def test_evaluate_of_a_missing_checkpoint_generates_nothing(cache, tmp_path, capsys):
    assert evaluate_main(["--checkpoint", str(tmp_path / "nope")]) == 2
    assert one_line(capsys) == f"evaluate.py: error: {tmp_path / 'nope'}: no such checkpoint directory"
    assert not cache.exists()


@pytest.mark.parametrize("extra, message", [
    (["--data-root", "MISSING"], "MISSING: data root does not exist"),
    (["--samples", "0"], "--samples must be >= 1, got 0"),
    (["--out", "r.avi"], "--out r.avi: the video must be one of .mp4, .gif"),
])
def test_rollout_argument_mistakes_are_one_line(cache, tmp_path, capsys, extra, message):
    ckpt = make_tiny_checkpoint(tmp_path / "ckpt")
    argv = ["rollout", "--checkpoint", str(ckpt), "--out", "r.mp4", *extra]
    assert cli_main([str(tmp_path / a) if a == "MISSING" else a for a in argv]) == 2
    line = one_line(capsys)
    assert line.startswith("bair-world rollout: error: ") and message.replace("MISSING", str(tmp_path / "MISSING")) in line
    assert not cache.exists()


def test_the_default_data_generates_only_the_split_asked_for(cache, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(synthetic, "DEFAULT_COUNTS", {"train": 5, "validate": 1, "test": 2})
    root = default_data.default_split_root("test", progress=False)
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["test"]
    line = one_line(capsys)
    assert line.startswith("generating the built-in pushing world's data once: 2 sequences (test 2), about 1 MB")
    assert f"into {root} (set BAIR_WORLD_CACHE to move it)" in line
    assert default_data.default_split_root("test", progress=False) == root and not capsys.readouterr().err  # cached


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_clear_error(tmp_path):
    ckpt = make_tiny_checkpoint(tmp_path / "ckpt")
    with pytest.raises(ValueError, match=r"^device 'cuda' asked for, but torch sees no CUDA device"):
        gym.make("BairWorld-v0", checkpoint=ckpt, references=FakeReferences(), device="cuda")


@pytest.mark.parametrize("index, error, match", [
    ("3", ValueError, r"must be an int in \[0, 6\), got '3'"), (1.5, ValueError, "got 1.5"),
    (True, ValueError, "got True"), (-1, IndexError, r"-1 is out of range \[0, 6\)"), (6, IndexError, "6 is out"),
])
def test_reset_index_must_be_an_int_in_range(tmp_path, index, error, match):
    ckpt = make_tiny_checkpoint(tmp_path / "ckpt")
    env = gym.make("BairWorld-v0", checkpoint=ckpt, references=FakeReferences(6), device="cpu")
    with pytest.raises(error, match=match):
        env.reset(seed=0, options={"index": index})
    vec = gym.make_vec("BairWorld-v0", num_envs=2, vectorization_mode="vector_entry_point", checkpoint=ckpt,
                       references=FakeReferences(6), device="cpu")
    with pytest.raises(error, match=match):
        vec.reset(seed=0, options={"index": index})


def test_envs_fall_back_to_the_previous_best_like_load_checkpoint(tmp_path):
    make_tiny_checkpoint(tmp_path / ".best.previous")  # what an interrupted save of best/ leaves
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gym.make("BairWorld-v0", checkpoint=tmp_path / "best", references=FakeReferences(), device="cpu")
    assert env.reset(seed=0)[0].shape == (64, 64, 3)
    assert any(".best.previous" in str(w.message) for w in caught)


def test_nan_in_the_train_split_names_the_file(tmp_path, capsys):
    root = write_folder_dataset(tmp_path / "bair", {"train": 2, "validate": 1})
    csv = root / "train" / "traj_0_to_255" / "1" / "actions.csv"
    rows = csv.read_text().splitlines()
    rows[4] = "nan," + rows[4].split(",", 1)[1]
    csv.write_text("\n".join(rows) + "\n")
    assert train_cli(["--preset", "tiny", "--data-root", str(root), "--log-dir", str(tmp_path / "runs"),
                      "--name", "r", "--no-progress"]) == 2
    assert one_line(capsys) == f"train.py: error: {csv}: row 5, column 1 is nan (1 non-finite values)"
    assert not (tmp_path / "runs" / "r").exists()


def test_a_bad_frame_read_by_a_worker_process_names_the_file(tmp_path, capsys):
    root = write_folder_dataset(tmp_path / "bair", {"train": 2, "validate": 1})
    for seq in ("0", "1"):
        (root / "train" / "traj_0_to_255" / seq / "7.png").write_bytes(b"not a png")
    assert train_cli(["--preset", "tiny", "--data-root", str(root), "--log-dir", str(tmp_path / "runs"),
                      "--name", "r", "--no-progress", "--num-workers", "2", "--batch-size", "2"]) == 2
    line = one_line(capsys)
    assert line.startswith(f"train.py: error: {root / 'train' / 'traj_0_to_255'}")
    assert line.endswith("7.png: not a PNG file (bad signature)")


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale, live = tmp_path / f".psnr.png.tmp-{dead.pid}", tmp_path / f".loss.png.tmp-{os.getppid()}"
    stale.write_bytes(b"half"), live.write_bytes(b"being written")
    RunReporter(tmp_path).close()
    assert not stale.exists() and live.exists()


def test_the_one_error_mapper_gives_one_line_and_exit_2_for_each_kind_of_user_error(tmp_path, capsys):
    """`cli_errors.run_command`: DataError, CheckpointError, RunFolderError and OSError each become one line
    naming the file (a missing file as read, the rest as written; ``output`` when the error names none),
    exit status 2; anything else (a bug) propagates with its traceback."""
    import errno

    from bair_world.checkpoint_files import CheckpointError
    from bair_world.cli_errors import run_command
    from bair_world.data import DataError
    from bair_world.training.runlock import RunFolderError

    def raising(error):
        def body():
            raise error
        return body

    file = tmp_path / "x.csv"
    cases = [
        (DataError(file, "row 2 is nan"), f"p: error: {file}: row 2 is nan"),
        (CheckpointError(file, "truncated"), f"p: error: {CheckpointError(file, 'truncated')}"),
        (RunFolderError(f"{tmp_path}: already holds a run"), f"p: error: {tmp_path}: already holds a run"),
        (OSError(errno.ENOSPC, "No space left on device", str(file)), f"p: error: cannot write {file}: No space left on device"),
        (OSError(errno.EROFS, "Read-only file system"), "p: error: cannot write out.mp4: Read-only file system"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", str(file)), f"p: error: {file}: No such file or directory"),
    ]
    for error, line in cases:
        assert run_command("p", raising(error), output="out.mp4") == 2
        assert one_line(capsys) == line
    assert run_command("p", lambda: 3) == 3 and run_command("p", lambda: None) == 0
    with pytest.raises(KeyError):
        run_command("p", raising(KeyError("a bug")))
