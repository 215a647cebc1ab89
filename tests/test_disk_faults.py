"""Issue 32: a full or read-only disk is one line naming the path and the cause (exit 2 at the CLI),
nothing half-written is left and no earlier good result is touched. Packing reserves its arrays' space
up front (a sparse memory map dies of SIGBUS on a full disk); a killed pack's staging folder is removed
by the next one."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from bair_world.cli import main as cli_main
from bair_world.data import npy_writer
from bair_world.data.packed import PackedDataset, PackWriter
from helpers import make_tiny_checkpoint, write_folder_dataset

DEAD_PID = 2**22 + 12345  # above Linux's default pid_max: never a live process


def _digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative path (to show a folder was not touched)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _err_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.fixture
def packed_pair(tmp_path):
    """A folder dataset and a good pack of it ("good"), beside which the tests pack again."""
    src = write_folder_dataset(tmp_path / "src", {"train": 2})
    assert cli_main(["data", "pack", str(src), "--out", str(tmp_path / "good"), "--no-progress"]) == 0
    return src, tmp_path / "good"


# --- packing reserves its space: a full disk is an OSError, never SIGBUS ---------------------------

@pytest.mark.skipif(not hasattr(os, "posix_fallocate"), reason="the OS has no posix_fallocate")
def test_pack_arrays_are_allocated_when_the_writer_opens_not_sparse(tmp_path):
    with PackWriter(tmp_path / "P", {"train": 3}, 4, labels={"train"}, flow={"train"}) as writer:
        files = sorted(writer._stage.rglob("*.npy"))
        assert len(files) == 5
        for f in files:  # every block is there before the first sequence: no page can fault on a full disk
            st = f.stat()
            assert st.st_blocks * 512 >= st.st_size, (f.name, st.st_blocks, st.st_size)
        for i in range(3):
            writer.put("train", i, np.full((4, 64, 64, 3), i, np.uint8), np.zeros((4, 4)), np.zeros((4, 3)),
                       np.zeros((4, 64, 64), np.uint8), np.zeros((4, 64, 64, 2)))
    data = PackedDataset(tmp_path / "P", "train", seq_len=4)
    assert [int(data.data.frames[i].max()) for i in range(3)] == [0, 1, 2]


def test_a_pack_larger_than_the_disk_fails_on_entry_naming_the_file_and_bytes(packed_pair, tmp_path):
    _, good = packed_pair
    before = _digest(good)
    n = 10**7  # 10 million 30-step sequences: 3.7 TB of frames alone
    need = n * 30 * 64 * 64 * 3
    if shutil.disk_usage(tmp_path).free >= need:
        pytest.skip("the disk has room for 3.7 TB")
    with pytest.raises(OSError) as info:
        with PackWriter(tmp_path / "P", {"train": n}, 30):
            pytest.fail("entered a pack the disk cannot hold")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "P" / "train" / "frames.npy")
    assert f"reserving {need + 128:,} bytes" in info.value.strerror and "the whole pack needs" in info.value.strerror
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good", "src"]  # no staging folder left
    assert _digest(good) == before


def test_data_pack_on_a_full_disk_is_one_line_and_leaves_nothing(packed_pair, tmp_path, monkeypatch, capsys):
    src, good = packed_pair
    before = _digest(good)
    monkeypatch.setattr(npy_writer, "free_bytes", lambda fd: 1000)  # what a full filesystem reports
    capsys.readouterr()
    assert cli_main(["data", "pack", str(src), "--out", str(tmp_path / "P"), "--no-progress"]) == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"bair-world data pack: error: cannot write {tmp_path / 'P' / 'train'}/")
    assert "No space left on device (reserving" in lines[0] and "1,000 free on its disk" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good", "src"]
    assert _digest(good) == before


def test_a_write_refused_after_the_reservation_is_an_oserror_naming_the_file(tmp_path, monkeypatch):
    writer = npy_writer.NpyRowWriter(tmp_path / "a.npy", "uint8", (2, 8), name=tmp_path / "final.npy")
    monkeypatch.setattr(os, "pwrite", lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left")))
    with pytest.raises(OSError, match="No space left") as info:
        writer.write_row(0, np.zeros(8))
    assert info.value.filename == str(tmp_path / "final.npy")
    writer.close(sync=False)


def test_the_default_dataset_on_a_full_disk_leaves_no_staging_folder_or_lock(tmp_path, monkeypatch):
    from bair_world.data.default_data import default_dataset_root

    monkeypatch.setenv("BAIR_WORLD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(npy_writer, "free_bytes", lambda fd: 0)
    with pytest.raises(OSError, match="No space left on device") as info:
        default_dataset_root(counts={"train": 1, "validate": 0, "test": 0}, workers=1, progress=False)
    assert "frames.npy" in info.value.filename
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_killed_packs_staging_folder_is_removed_by_the_next_pack(packed_pair, tmp_path, capsys):
    src, _ = packed_pair
    dead = tmp_path / f".P.tmp-{DEAD_PID}-0123abcd"
    (dead / "train").mkdir(parents=True)
    (dead / "train" / "frames.npy").write_bytes(bytes(4096))
    live = tmp_path / f".P.tmp-{os.getpid()}-0123abcd"  # a pack in progress (this process): kept
    live.mkdir()
    assert cli_main(["data", "pack", str(src), "--out", str(tmp_path / "P"), "--no-progress"]) == 0
    assert not dead.exists() and live.is_dir()
    assert any(f"removed 1 staging folders of killed packs" in line and str(dead) in line for line in _err_lines(capsys))
    assert len(PackedDataset(tmp_path / "P", "train")) == 2


def test_pack_refuses_a_huge_source_manifest_before_writing(packed_pair, tmp_path, capsys):
    src, _ = packed_pair
    (src / "manifest.json").write_text('{"x": "' + "a" * 600_000 + '"}')
    capsys.readouterr()
    assert cli_main(["data", "pack", str(src), "--out", str(tmp_path / "P"), "--no-progress"]) == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1 and str(src / "manifest.json") in lines[0] and "600,009 bytes" in lines[0], lines
    assert not (tmp_path / "P").exists()


# --- evaluate --out and bundle --dest on a full or read-only disk ---------------------------------

@pytest.fixture
def tiny_eval(tmp_path):
    """A tiny checkpoint and a one-sequence test split, and evaluate's arguments for them."""
    ckpt = make_tiny_checkpoint(tmp_path / "ckpt")
    data = write_folder_dataset(tmp_path / "data", {"test": 1})
    return ["--checkpoint", str(ckpt), "--data-root", str(data), "--n-future", "2", "--samples", "1",
            "--device", "cpu", "--no-progress", "--max-sequences", "1"]


def _full_for(suffix: str, real):
    """A `write_verified` that finds the disk full when it writes a file ending in ``suffix``."""
    def write(path, data, *, sync=False, name=None):
        if str(name or path).endswith(suffix):
            raise OSError(errno.ENOSPC, "No space left on device", str(name or path))
        return real(path, data, sync=sync, name=name)
    return write


def test_evaluate_onto_a_full_disk_is_one_line_and_leaves_no_half_report(tiny_eval, tmp_path, monkeypatch, capsys):
    from bair_world import io as bio
    from bair_world.training import eval_report
    from bair_world.training.evaluate import main as evaluate_main

    full = _full_for(".png", bio.write_verified)
    monkeypatch.setattr(bio, "write_verified", full)
    monkeypatch.setattr(eval_report, "write_verified", full, raising=False)
    out = tmp_path / "new" / "eval"
    assert evaluate_main([*tiny_eval, "--out", str(out)]) == 2
    lines = _err_lines(capsys)
    assert lines == [f"evaluate.py: error: cannot write {out / 'psnr_per_step.png'}: No space left on device"]
    assert not (tmp_path / "new").exists()  # the folders it made are gone again
    old = tmp_path / "old"
    old.mkdir()
    (old / "metrics.json").write_text("{}")
    (old / "psnr_per_step.png").write_bytes(b"old plot")
    assert evaluate_main([*tiny_eval, "--out", str(old)]) == 2
    assert (old / "metrics.json").read_text() == "{}" and (old / "psnr_per_step.png").read_bytes() == b"old plot"
    assert sorted(p.name for p in old.iterdir()) == ["metrics.json", "psnr_per_step.png"]  # no temporaries


def test_evaluate_onto_a_read_only_folder_is_refused_before_evaluating(tiny_eval, tmp_path, monkeypatch, capsys):
    from bair_world.training import eval_report, evaluate

    def never(*args, **kwargs):
        raise AssertionError("evaluated although --out cannot be written")

    monkeypatch.setattr(evaluate, "evaluate", never)
    real = os.access  # what a read-only mount answers for the test's folder:
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p).startswith(str(tmp_path)) else real(p, mode, **kw))
    monkeypatch.setattr(eval_report, "_read_only", lambda folder: True, raising=False)
    assert evaluate.main([*tiny_eval, "--out", str(tmp_path / "ro" / "eval")]) == 2
    assert _err_lines(capsys) == [f"evaluate.py: error: cannot write {tmp_path}: Read-only file system"]
    assert not (tmp_path / "ro").exists()


def test_bundle_onto_a_full_disk_is_one_line_and_leaves_the_old_bundle(tmp_path, monkeypatch, capsys):
    import bair_world.checkpoint as checkpoint
    from bair_world.training.bundle import main as bundle_main

    ckpt = make_tiny_checkpoint(tmp_path / "ckpt")
    dest = make_tiny_checkpoint(tmp_path / "pkg" / "default", seed=1)  # an earlier bundle
    before = _digest(dest)
    staging = []

    def full(tmp, path, model, half):
        staging.extend(p.name for p in dest.parent.iterdir() if p.name.startswith("."))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "_write_weights", full)
    assert bundle_main([str(ckpt), "--dest", str(dest)]) == 2
    assert _err_lines(capsys) == [f"bundle.py: error: cannot write {dest}: No space left on device"]
    assert len(staging) == 1 and staging[0].startswith(".default.tmp-") and ".tmp-" not in staging[0][13:]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["default"] and _digest(dest) == before


def test_bundle_onto_a_read_only_disk_is_one_line(tmp_path, monkeypatch, capsys):
    from bair_world.training.bundle import main as bundle_main

    ckpt = make_tiny_checkpoint(tmp_path / "ckpt")

    def read_only(self, *args, **kwargs):  # what mkdir raises on a read-only mount (tests run as root: no chmod)
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    assert bundle_main([str(ckpt), "--dest", str(tmp_path / "ro" / "default")]) == 2
    assert _err_lines(capsys) == [f"bundle.py: error: cannot write {tmp_path / 'ro'}: Read-only file system"]
    assert not (tmp_path / "ro").exists()
