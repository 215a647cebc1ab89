"""write_dataset / default_dataset_root / `bair-world data synth`: layout, determinism, resume, bad input."""

import json
import shutil

import numpy as np
import pytest

from bair_world.cli import main as cli_main
from bair_world.data.bair_folder import list_sequences, read_labels, read_sequence
from bair_world.data.errors import DataError
from bair_world.data.flow import dequantise_flow, quantise_flow, read_flow
from bair_world.data.open import open_dataset
from bair_world.data.packed import is_packed
from bair_world.data.default_data import default_dataset_root
from bair_world.data.synthetic import sequence_dir, sequence_seed, write_dataset
from bair_world.sim import GENERATOR_VERSION, generate_sequence, rollout

TINY = {"train": 3, "validate": 1, "test": 1}


def _tree_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_bytes_on_disk_do_not_depend_on_worker_count(tmp_path):
    one = write_dataset(tmp_path / "one", TINY, seed=7, workers=1, progress=False)
    two = write_dataset(tmp_path / "two", TINY, seed=7, workers=2, progress=False)
    assert one.written == two.written == 5
    a, b = _tree_bytes(tmp_path / "one"), _tree_bytes(tmp_path / "two")
    assert a.keys() == b.keys() and len(a) == 5 * 35 + 1  # 30 PNG, 2 CSV, labels, flow, poses .npz; manifest
    assert all(a[k] == b[k] for k in a)


def test_layout_units_and_manifest(tmp_path):
    report = write_dataset(tmp_path, TINY, seed=1, workers=1, progress=False)
    assert report.counts == TINY and report.skipped == 0 and report.motion.sequences == 5
    seqs = list_sequences(tmp_path, "train")
    assert [p.relative_to(tmp_path).as_posix() for p in seqs] == [f"train/traj_0_to_255/{i}" for i in range(3)]
    frames, actions, positions = read_sequence(seqs[2])
    assert frames.shape == (30, 64, 64, 3) and actions.shape == (30, 4) and positions.shape == (30, 3)
    np.testing.assert_array_equal(actions[0::2], actions[1::2])
    assert np.abs(actions[:, :2]).max() <= 0.07 + 1e-6
    assert (positions[:, 0] >= 0.4 - 1e-6).all() and (positions[:, 2] <= 0.3 + 1e-6).all()
    row = (seqs[2] / "actions.csv").read_text().splitlines()[0].split(",")
    assert len(row) == 4 and "e" in row[0] and len(row[0].split("e")[0]) > 18  # %.18e, no header
    # what is on disk is the world's sequence for the derived seed (float32 in the CSVs)
    ref_frames, ref_actions, _ = generate_sequence(sequence_seed(1, "train", 2))
    np.testing.assert_array_equal(frames, ref_frames)
    np.testing.assert_allclose(actions, ref_actions, rtol=1e-6, atol=1e-7)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["seed"] == 1 and manifest["counts"] == TINY and manifest["sequence_length"] == 30
    assert manifest["targets"] == ["labels", "flow", "poses"]
    # every sequence records the world's labels and true flow (int8 in 1/8 px: within 1/16 px)
    truth = rollout(sequence_seed(1, "train", 2), 30, labels=True, flow=True)
    np.testing.assert_array_equal(read_labels(seqs[2]), truth.labels)
    np.testing.assert_array_equal(read_flow(seqs[2]), dequantise_flow(quantise_flow(truth.flow)))
    assert np.abs(read_flow(seqs[2]) - truth.flow.transpose(0, 3, 1, 2)).max() <= 1 / 16


def test_a_folder_written_before_flow_is_not_mixed_with_flow_sequences(tmp_path):
    write_dataset(tmp_path, {"test": 1}, seed=0, workers=1, progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    del manifest["targets"]  # as an older bair-world wrote it (labels, no flow.npz)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"manifest.json: .*targets \['labels'\]; refusing to mix in .*"
                                         r"targets \['labels', 'flow', 'poses'\]"):
        write_dataset(tmp_path, {"test": 2}, seed=0, workers=1, progress=False)


def test_a_folder_written_before_poses_is_not_mixed_with_pose_sequences(tmp_path):
    """Issue 30: sequences record object poses; a folder of an older writer (labels and flow) is not extended."""
    write_dataset(tmp_path, {"test": 1}, seed=0, workers=1, progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["targets"] = ["labels", "flow"]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"targets \['labels', 'flow'\]; refusing to mix in .*'poses'"):
        write_dataset(tmp_path, {"test": 2}, seed=0, workers=1, progress=False)


def test_resume_skips_complete_and_clears_partial_sequences(tmp_path):
    write_dataset(tmp_path, TINY, seed=2, workers=1, progress=False)
    victim = sequence_dir(tmp_path, "train", 1)
    expected = _tree_bytes(victim)
    shutil.rmtree(victim)
    partial = victim.parent / ".1.partial-abc"  # what an interrupted write leaves behind
    partial.mkdir()
    (partial / "0.png").write_bytes(b"half")
    report = write_dataset(tmp_path, TINY, seed=2, workers=1, progress=False)
    assert (report.written, report.skipped) == (1, 4)
    assert not partial.exists()
    assert _tree_bytes(victim) == expected


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown split"):
        write_dataset(tmp_path, {"training": 2}, progress=False)
    with pytest.raises(ValueError, match=">= 0"):
        write_dataset(tmp_path, {"train": -1}, progress=False)
    with pytest.raises(ValueError, match="seed"):
        write_dataset(tmp_path, {"train": 1}, seed=-3, progress=False)
    write_dataset(tmp_path / "d", {"test": 1}, seed=0, workers=1, progress=False)
    with pytest.raises(ValueError, match="manifest.json.*seed 0"):
        write_dataset(tmp_path / "d", {"test": 1}, seed=5, workers=1, progress=False)


def test_default_dataset_root_generates_once(tmp_path, monkeypatch):
    monkeypatch.setenv("BAIR_WORLD_CACHE", str(tmp_path))
    counts = {"train": 2, "validate": 0, "test": 1}
    missing = default_dataset_root(create=False, counts=counts)
    assert not missing.exists() and missing.parent == tmp_path
    root = default_dataset_root(counts=counts, workers=1, progress=False)
    assert root == missing and is_packed(root) and root.name.endswith("-packed")  # the compact form
    # named by the data format too: caches written before flow and poses were recorded are not reused
    assert root.name == f"synth-v{GENERATOR_VERSION}-flow-poses-seed0-train2-validate0-test1-packed"
    assert len(open_dataset(root, "train")) == 2 and len(open_dataset(root, "test")) == 1
    assert open_dataset(root, "test", targets=True)[0]["flow"].shape == (30, 2, 64, 64)
    assert (root / "test" / "poses.npy").is_file()  # the readout's targets
    stamp = (root / "packed.json").stat().st_mtime_ns
    assert default_dataset_root(counts=counts, workers=1, progress=False) == root
    assert (root / "packed.json").stat().st_mtime_ns == stamp  # not regenerated
    assert not any(".partial" in p.name for p in tmp_path.iterdir())


def test_cli_writes_and_summarises(tmp_path, capsys):
    out = tmp_path / "synth"
    rc = cli_main(["data", "synth", "--out", str(out), "--train", "2", "--validate", "0", "--test", "1",
                   "--seed", "4", "--workers", "1", "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "train 2, validate 0, test 1" in text and "frames/s" in text and "moved > 2 px" in text
    assert len(list_sequences(out, "train")) == 2
    rc = cli_main(["data", "synth", "--out", str(out), "--seed", "9", "--train", "1", "--no-progress"])
    assert rc == 2 and "manifest.json" in capsys.readouterr().err


# ---- a rerun removes only what it wrote, and never through a symbolic link (issue 32) -----------


def _listing(folder):
    return sorted((p.relative_to(folder).as_posix(), p.read_bytes() if p.is_file() else None)
                  for p in folder.rglob("*"))


def test_a_rerun_removes_past_the_counts_only_what_it_wrote(tmp_path, capsys):
    out = tmp_path / "X"
    write_dataset(out, {"train": 4, "validate": 0, "test": 0}, seed=3, workers=1, progress=False)
    traj = out / "train" / "traj_0_to_255"
    (traj / "my_notes").mkdir()
    (traj / "my_notes" / "ideas.txt").write_text("keep me")
    (traj / "readme.txt").write_text("mine")
    (traj / "3" / "annotations.json").write_text("{}")  # a sequence folder holding a user's file
    (out / "train" / "scratch").mkdir()  # not a trajectory folder: not descended into
    (out / "train" / "scratch" / "7").mkdir()
    report = write_dataset(out, {"train": 2, "validate": 0, "test": 0}, seed=3, workers=1, progress=False)
    assert report.removed == 1 and not (traj / "2").exists()  # the writer's sequence past the counts
    assert (traj / "my_notes" / "ideas.txt").read_text() == "keep me" and (traj / "readme.txt").exists()
    assert (traj / "3" / "annotations.json").exists() and (traj / "3" / "0.png").exists()
    assert (out / "train" / "scratch" / "7").is_dir()
    assert sorted(p.relative_to(out).as_posix() for p in report.kept) == [
        "train/scratch", "train/traj_0_to_255/3", "train/traj_0_to_255/my_notes", "train/traj_0_to_255/readme.txt"]
    assert "left alone, not written by data synth: 4 entries" in str(report)
    rc = cli_main(["data", "synth", "--out", str(out), "--train", "2", "--validate", "0", "--test", "0",
                   "--seed", "3", "--workers", "1", "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0 and "past the counts removed" not in text and "left alone, not written by data synth" in text
    assert (traj / "my_notes" / "ideas.txt").exists()


@pytest.mark.parametrize("link", ["train/traj_0_to_255", "train", "train/traj_0_to_255/1"])
def test_a_symlinked_folder_is_refused_and_its_target_untouched(tmp_path, capsys, link):
    out = tmp_path / "X"
    write_dataset(out, {"train": 3, "validate": 0, "test": 0}, seed=1, workers=1, progress=False)
    elsewhere = tmp_path / "elsewhere"
    (out / link).rename(elsewhere)
    (out / link).symlink_to(elsewhere, target_is_directory=True)
    for folder in (elsewhere, *[p for p in elsewhere.rglob("*") if p.is_dir()]):
        (folder / "notes").mkdir()  # what the old rerun deleted as "past the counts"
        (folder / "notes" / "a.txt").write_text("mine")
    outside, inside = _listing(elsewhere), _listing(out)
    for counts in ({"train": 3}, {"train": 1}):  # a plain rerun, and one with smaller counts
        with pytest.raises(DataError, match="is a symbolic link .*writes and removes only inside") as err:
            write_dataset(out, counts, seed=1, workers=1, progress=False)
        assert err.value.path == out / link
    rc = cli_main(["data", "synth", "--out", str(out), "--train", "1", "--validate", "0", "--test", "0",
                   "--seed", "1", "--workers", "1", "--no-progress"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and f"{out / link}: is a symbolic link (to {elsewhere})" in lines[0], lines
    assert _listing(elsewhere) == outside and _listing(out) == inside  # nothing removed, nothing written


def test_data_check_frees_no_staging_folder_through_a_symlink(tmp_path):
    from bair_world.data.bair_folder import partial_writes, remove_partial_writes

    out = tmp_path / "X"
    (out / "train" / "traj_0_to_255" / ".1.partial-abc").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "traj_0_to_255" / ".2.partial-abc").mkdir(parents=True)
    (elsewhere / "traj_0_to_255" / ".2.partial-abc" / "0.png").write_bytes(b"theirs")
    (out / "validate").symlink_to(elsewhere, target_is_directory=True)
    (out / "train" / "traj_1").symlink_to(elsewhere / "traj_0_to_255", target_is_directory=True)
    assert partial_writes(out) == [out / "train" / "traj_0_to_255" / ".1.partial-abc"]
    assert remove_partial_writes(out) == 1
    assert (elsewhere / "traj_0_to_255" / ".2.partial-abc" / "0.png").read_bytes() == b"theirs"
