"""`bair-world data check`: counts, column ranges, and every bad file listed (not just the first)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_sequence

from bair_world.cli import main as cli_main
from bair_world.data.bair_folder import write_sequence
from bair_world.data.validate import check_dataset, check_sequence


@pytest.fixture
def dataset(tmp_path):
    """train: 3 sequences over 2 trajectory folders, test: 1 sequence; 8 steps each."""
    for split, traj, idx, seed in [("train", "traj_0_to_255", 0, 0), ("train", "traj_0_to_255", 1, 1),
                                   ("train", "traj_256_to_511", 0, 2), ("test", "traj_0_to_255", 0, 3)]:
        write_sequence(tmp_path / split / traj / str(idx), *make_sequence(seed, length=8))
    return tmp_path


def test_clean_dataset_counts_and_ranges(dataset):
    report = check_dataset(dataset)
    assert report.ok and report.errors == []
    assert report.counts == {"train": 3, "test": 1}
    assert report.lengths == {8: 4}
    seqs = [make_sequence(s, length=8) for s in range(4)]
    actions = np.concatenate([s[1] for s in seqs])
    positions = np.concatenate([s[2] for s in seqs])
    np.testing.assert_array_equal(report.action_min, actions.min(0))
    np.testing.assert_array_equal(report.action_max, actions.max(0))
    np.testing.assert_array_equal(report.position_min, positions.min(0))
    np.testing.assert_array_equal(report.position_max, positions.max(0))
    text = report.format()
    assert "all sequences are valid" in text and "position[2]" in text


def test_every_bad_file_is_listed(dataset):
    seq_a = dataset / "train" / "traj_0_to_255" / "1"
    seq_b = dataset / "test" / "traj_0_to_255" / "0"
    (seq_a / "3.png").unlink()
    (seq_a / "5.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (seq_a / "actions.csv").write_text("nan,0,0,0\n" * 8)
    (seq_b / "endeffector_positions.csv").write_text("0.5,0.1\n" * 8)
    report = check_dataset(dataset)
    assert not report.ok
    bad = sorted(str(e.path.relative_to(dataset)) for e in report.errors)
    assert bad == ["test/traj_0_to_255/0/endeffector_positions.csv", "train/traj_0_to_255/1/3.png",
                   "train/traj_0_to_255/1/5.png", "train/traj_0_to_255/1/actions.csv"]
    assert report.bad_sequences == {"train": 1, "test": 1}
    assert report.counts == {"train": 3, "test": 1}
    assert report.lengths == {8: 2}  # ranges come from the good sequences only


def test_required_length_and_extra_frame(dataset):
    seq = dataset / "test" / "traj_0_to_255" / "0"
    arrays, errors = check_sequence(seq, seq_len=10)
    assert arrays is None and {e.path.name for e in errors} == {"actions.csv", "endeffector_positions.csv", "8.png", "9.png"}
    (seq / "8.png").write_bytes((seq / "0.png").read_bytes())
    arrays, errors = check_sequence(seq)
    assert arrays is None and [e.path.name for e in errors] == ["8.png"]
    assert check_sequence(seq, seq_len=8)[1] == []


def test_flow_and_labels_files_are_checked_when_present(dataset):
    frames, actions, positions = make_sequence(0, length=8)
    flow = np.zeros((8, 64, 64, 2), np.float32)
    seqs = [dataset / "train" / "traj_0_to_255" / str(i) for i in range(2)]
    for seq in seqs:
        write_sequence(seq, frames, actions, positions, overwrite=True, labels=np.zeros((8, 64, 64), np.uint8),
                       flow=flow)
    assert check_dataset(dataset).ok
    (seqs[0] / "flow.npz").write_bytes(b"garbage")
    np.savez_compressed(seqs[1] / "flow.npz", flow=np.zeros((8, 64, 64, 2), np.int8))  # channels last: wrong
    np.savez_compressed(seqs[1] / "labels.npz", labels=np.full((8, 64, 64), 3, np.uint8))
    report = check_dataset(dataset)
    problems = sorted((e.path.relative_to(dataset).as_posix(), e.problem) for e in report.errors)
    assert [path for path, _ in problems] == ["train/traj_0_to_255/0/flow.npz", "train/traj_0_to_255/1/flow.npz",
                                              "train/traj_0_to_255/1/labels.npz"]
    assert problems[0][1].startswith("unreadable flow file")
    assert problems[1][1] == "flow must be int8 (T, 2, 64, 64), got int8 (8, 64, 64, 2)"
    assert problems[2][1] == "label value 3 outside 0..2"
    assert report.bad_sequences == {"train": 2, "test": 0}


def test_missing_root_no_splits_and_empty_split(tmp_path):
    report = check_dataset(tmp_path / "nope")
    assert not report.ok and report.errors[0].path == tmp_path / "nope"
    report = check_dataset(tmp_path)
    assert "no split folder" in str(report.errors[0])
    (tmp_path / "validate").mkdir()
    report = check_dataset(tmp_path)
    assert report.errors[0].path == tmp_path / "validate" and "no sequences" in str(report.errors[0])


def test_cli_check_exit_status_and_output(dataset, capsys):
    assert cli_main(["data", "check", str(dataset), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "action[0]" in out
    bad = dataset / "train" / "traj_256_to_511" / "0" / "2.png"
    bad.write_bytes(b"")
    assert cli_main(["data", "check", str(dataset), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert str(bad) in out and "1 problem(s)" in out
    assert cli_main(["data", "check", str(dataset), "--split", "test", "--no-progress"]) == 0


def test_check_real_bair(real_bair_root):
    report = check_dataset(real_bair_root, seq_len=30)
    assert report.ok, report.format()
    assert report.counts == {"test": 1} and report.lengths == {30: 1}
    assert 0.35 < report.position_min[0] < report.position_max[0] < 0.85
