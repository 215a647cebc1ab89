"""One run per run folder: the lock, refusing to mix runs, unwritable log dirs, and Ctrl-C/SIGTERM stops."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bair_world.checkpoint import load_checkpoint, load_resume_state, save_checkpoint
from bair_world.models import SVG, model_preset
from bair_world.training import presets
from bair_world.training import epoch as epoch_module
from bair_world.training.runlock import RunFolderBusy, RunLock, lock_path
from bair_world.training.train import main, train

REPO = Path(__file__).resolve().parents[1]


DATA_COUNTS = {"train": 4, "validate": 2}  # sequences per split of the `data_root` fixture (conftest.py)


def args(data_root: Path, log_dir: Path, *extra: str) -> list[str]:
    return ["--preset", "tiny", "--data-root", str(data_root), "--log-dir", str(log_dir), "--name", "r",
            "--batch-size", "2", "--val-sequences", "2", "--sample-every", "0", "--no-progress", *extra]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def holder(tmp_path):
    """Another live process holding the lock of tmp_path/runs/r."""
    run = tmp_path / "runs" / "r"
    code = (f"import time; from bair_world.training.runlock import RunLock\n"
            f"with RunLock({str(run)!r}):\n    print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    proc.kill()
    proc.wait()


def test_a_second_run_on_a_locked_folder_refuses_with_the_holders_pid(holder, data_root, tmp_path, capsys):
    log_dir = tmp_path / "runs"
    assert main(args(data_root, log_dir, "--seed", "2")) == 2
    line = one_line(capsys)
    assert str(log_dir / "r") in line and f"pid {holder.pid}" in line and "in use" in line
    assert not (log_dir / "r").exists()  # nothing written
    assert main(["--resume", str(log_dir / "r")]) == 2  # resuming it is refused too (here: not a run yet)
    capsys.readouterr()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "r"
    lock_path(run).write_text(f"{dead.pid}\n")  # left by a killed run (the kernel dropped its flock)
    with RunLock(run):
        assert lock_path(run).read_text() == f"{os.getpid()}\n"
        with pytest.raises(RunFolderBusy, match=f"pid {os.getpid()}"):
            RunLock(run).__enter__()
    assert not lock_path(run).exists()


def test_a_fresh_run_never_overwrites_an_existing_run(data_root, tmp_path, capsys):
    log_dir = tmp_path / "runs"
    assert main(args(data_root, log_dir, "--epochs", "1")) == 0
    before = snapshot(log_dir / "r")
    capsys.readouterr()
    assert main(args(data_root, log_dir, "--seed", "2")) == 2
    line = one_line(capsys)
    assert "already holds a run" in line and f"--resume {log_dir / 'r'}" in line
    assert snapshot(log_dir / "r") == before


def test_a_save_leaves_another_live_process_temporary_alone(tmp_path):
    model = SVG(model_preset("tiny"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live, stale = tmp_path / f".last.tmp-{os.getppid()}-abcd1234", tmp_path / f".last.tmp-{dead.pid}-abcd1234"
    live.mkdir(), stale.mkdir()
    save_checkpoint(tmp_path / "last", model, step=0, epoch=0)
    assert live.is_dir() and not stale.exists()


def test_resume_of_a_folder_without_a_run_is_one_line(tmp_path, capsys):
    before = snapshot(tmp_path)
    assert main(["--resume", str(tmp_path)]) == 2  # raised while parsing: still one line
    line = one_line(capsys)
    assert str(tmp_path / "train_config.json") in line and "nothing to resume" in line
    assert snapshot(tmp_path) == before


def test_a_log_dir_that_is_a_file_is_one_line(data_root, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(args(data_root, tmp_path / "file")) == 2
    line = one_line(capsys)
    assert line == f"train.py: error: cannot write {tmp_path / 'file'}: is a file, not a folder"
    assert (tmp_path / "file").read_text() == "x"


def test_a_read_only_log_dir_is_one_line_before_any_work(data_root, tmp_path, capsys, monkeypatch):
    def read_only(self, *a, **k):  # what mkdir raises on a read-only mount (tests run as root: no chmod)
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    assert main(args(data_root, tmp_path / "ro")) == 2
    assert one_line(capsys) == f"train.py: error: cannot write {tmp_path / 'ro'}: Read-only file system"


def test_a_full_disk_is_one_line_naming_the_checkpoint(data_root, tmp_path, capsys, monkeypatch):
    from bair_world import checkpoint

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full)
    assert main(args(data_root, tmp_path, "--epochs", "1")) == 2
    line = one_line(capsys)
    assert line == f"train.py: error: cannot write {tmp_path / 'r' / 'best'}: No space left on device"
    assert not list((tmp_path / "r").glob(".*.tmp-*"))  # no half-written checkpoint left


def test_sigint_stops_mid_epoch_with_a_resumable_checkpoint(data_root, tmp_path, monkeypatch, capsys):
    # The handler the process inherited: Python's default_int_handler, or SIG_IGN when pytest was
    # started with SIGINT ignored (``nohup ... &``, ``trap '' INT``, many CI runners).
    inherited = signal.getsignal(signal.SIGINT)
    calls = []
    real = epoch_module.teacher_mask

    def mask_then_interrupt(*a):  # the signal lands during optimiser step 3 (epoch 2, batch 1)
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a)

    monkeypatch.setattr(epoch_module, "teacher_mask", mask_then_interrupt)
    cfg = presets.training_preset("tiny").replace(data_root=data_root, log_dir=tmp_path, name="r", progress=False,
                                         batch_size=2, val_sequences=2, sample_every=0)
    summary = train(cfg)
    assert summary["stopped_by_signal"] == "SIGINT" and summary["step"] == 3
    assert load_resume_state(tmp_path / "r" / "last")["partial"]["batches"] == 1
    assert signal.getsignal(signal.SIGINT) is inherited  # the inherited handler restored, whatever it was
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["--resume", str(tmp_path / "r"), "--no-progress"]) == 0
    assert f"[train] resuming {tmp_path / 'r'} from step 3 (epoch 2, batch 1)" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "r" / "last")[1]["step"] == 4


def test_ctrl_c_on_the_command_line_exits_130_with_the_resume_command(data_root, tmp_path):
    cmd = [sys.executable, str(REPO / "training" / "train.py"), *args(data_root, tmp_path, "--epochs", "1000")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    for line in proc.stdout:  # the header is printed once the loop is about to start
        if line.startswith("[train] "):
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith(f"continue with: python training/train.py --resume {tmp_path / 'r'}")
    step = load_checkpoint(tmp_path / "r" / "last")[1]["step"]
    assert step >= 1 and f"stopped by SIGINT after step {step}" in err
