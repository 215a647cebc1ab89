"""Original BAIR TFRecords: reading, `bair-world data convert` (byte-exact, split, resume) and corrupt files."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_sequence, write_bair_tfrecord

from bair_world.cli import main as cli_main
from bair_world.data import DataError
from bair_world.data.bair_folder import list_sequences, read_sequence
from bair_world.data.tfrecord import ConvertConfig, convert, read_bair_tfrecord, scan_tfrecord

TRAIN_FILES = {"traj_0_to_255.tfrecords": [0, 1, 2], "traj_256_to_511.tfrecords": [3, 4]}


@pytest.fixture
def source(tmp_path):
    """A tiny softmotion30_44k: two train files (3 + 2 trajectories) and one test file (1 trajectory)."""
    root = tmp_path / "softmotion30_44k"
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    for name, seeds in TRAIN_FILES.items():
        write_bair_tfrecord(root / "train" / name, [make_sequence(s) for s in seeds])
    write_bair_tfrecord(root / "test" / "traj_0_to_255.tfrecords", [make_sequence(100)])
    return root


def _cfg(source, out, **kw):
    return ConvertConfig(source, out, validate_fraction=kw.pop("validate_fraction", 0.4), progress=False, **kw)


def test_reader_matches_the_tfrecord_package(source):
    from tfrecord.reader import tfrecord_loader

    path = source / "train" / "traj_0_to_255.tfrecords"
    ours = list(read_bair_tfrecord(path))
    theirs = list(tfrecord_loader(str(path), None))
    assert len(ours) == len(theirs) == 3
    for (frames, actions, positions), rec, seed in zip(ours, theirs, TRAIN_FILES[path.name]):
        expected = make_sequence(seed)
        for got, want in zip((frames, actions, positions), expected):
            np.testing.assert_array_equal(got, want)
        assert frames[7].tobytes() == bytes(rec["7/image_aux1/encoded"])  # raw RGB bytes, row-major
        np.testing.assert_array_equal(actions[7], rec["7/action"])


def test_convert_round_trip_is_byte_exact_with_deterministic_split(source, tmp_path):
    out = tmp_path / "bair"
    summary = convert(_cfg(source, out))
    assert summary.written == {"train": 3, "validate": 2, "test": 1}  # round(0.4 * 5) = 2 to validate
    assert summary.skipped == {"train": 0, "validate": 0, "test": 0}
    seen = set()
    for split in ("train", "validate", "test"):
        for seq in list_sequences(out, split):
            traj, index = seq.parent.name, int(seq.name)
            seed = 100 if split == "test" else TRAIN_FILES[f"{traj}.tfrecords"][index]
            seen.add(seed)
            for got, want in zip(read_sequence(seq, None), make_sequence(seed)):
                np.testing.assert_array_equal(got, want)  # pixels and float32 values survive exactly
    assert seen == {0, 1, 2, 3, 4, 100}  # every trajectory exactly once, no train/validate overlap
    # same seed -> same split; the split depends on nothing else
    out2 = tmp_path / "bair2"
    convert(_cfg(source, out2))
    assert [p.relative_to(out2) for p in list_sequences(out2, "validate")] == [
        p.relative_to(out) for p in list_sequences(out, "validate")
    ]
    assert (out / "convert.json").is_file()


def test_convert_resumes_skipping_complete_sequences(source, tmp_path):
    out = tmp_path / "bair"
    convert(_cfg(source, out))
    victim = list_sequences(out, "train")[1]
    before = read_sequence(victim, None)
    (victim / "12.png").unlink()  # incomplete: must be rewritten
    partial = victim.parent / f".{victim.name}.partial-xyz"  # left by a killed run: must be cleaned
    partial.mkdir()
    summary = convert(_cfg(source, out))
    assert sum(summary.written.values()) == 1 and sum(summary.skipped.values()) == 5
    assert not partial.exists()
    for got, want in zip(read_sequence(victim, None), before):
        np.testing.assert_array_equal(got, want)


def test_resume_with_other_settings_is_refused(source, tmp_path):
    out = tmp_path / "bair"
    convert(_cfg(source, out))
    with pytest.raises(DataError, match="other settings") as err:
        convert(_cfg(source, out, seed=1))
    assert err.value.path == out / "convert.json"


def test_no_validation_split_and_bad_fraction(source, tmp_path):
    summary = convert(_cfg(source, tmp_path / "a", validate_fraction=0.0))
    assert summary.written == {"train": 5, "validate": 0, "test": 1}
    with pytest.raises(ValueError, match="validate_fraction"):
        convert(_cfg(source, tmp_path / "b", validate_fraction=1.0))


def test_truncated_tfrecord_names_the_file_and_writes_nothing(source, tmp_path):
    bad = source / "train" / "traj_256_to_511.tfrecords"
    data = bad.read_bytes()
    bad.write_bytes(data[:-100])
    with pytest.raises(DataError, match="truncated TFRecord: record 1") as err:
        scan_tfrecord(bad)
    assert err.value.path == bad and str(bad) in str(err.value)
    out = tmp_path / "bair"
    with pytest.raises(DataError, match="truncated") as err:
        convert(_cfg(source, out))
    assert err.value.path == bad
    assert not (out / "train").exists()  # checked before anything is written
    bad.write_bytes(data[:5])  # cut inside the first header
    with pytest.raises(DataError, match="record 0 header cut off"):
        scan_tfrecord(bad)


def test_corrupt_record_fails_its_checksum(source):
    bad = source / "train" / "traj_0_to_255.tfrecords"
    data = bytearray(bad.read_bytes())
    first_len = int.from_bytes(data[:8], "little")
    data[12 + first_len + 4 + 12 + 500] ^= 0x01  # one bit inside record 1's data
    bad.write_bytes(bytes(data))
    frames = read_bair_tfrecord(bad)
    next(frames)  # record 0 is intact
    with pytest.raises(DataError, match="record 1 .* checksum") as err:
        next(frames)
    assert err.value.path == bad
    data[3] ^= 0x01  # a corrupt length field
    bad.write_bytes(bytes(data))
    with pytest.raises(DataError, match="bad length checksum"):
        scan_tfrecord(bad)


def test_record_missing_steps_or_wrong_image_size(tmp_path):
    short = tmp_path / "short.tfrecords"
    write_bair_tfrecord(short, [make_sequence(0, length=29)])
    with pytest.raises(DataError, match="record 0: missing image feature '29/image_aux1/encoded'") as err:
        list(read_bair_tfrecord(short))
    assert err.value.path == short
    assert len(list(read_bair_tfrecord(short, seq_len=29))) == 1
    from tfrecord import TFRecordWriter

    odd = tmp_path / "odd.tfrecords"
    writer = TFRecordWriter(str(odd))
    writer.write({"0/image_aux1/encoded": (b"\x00" * 100, "byte"), "0/action": ([0.0] * 4, "float"),
                  "0/endeffector_pos": ([0.5, 0.0, 0.2], "float")})
    writer.close()
    with pytest.raises(DataError, match="has 100 bytes, expected 12288"):
        list(read_bair_tfrecord(odd, seq_len=1))


def test_missing_or_empty_source_folders(tmp_path):
    with pytest.raises(DataError, match="no train/ or test/") as err:
        convert(_cfg(tmp_path, tmp_path / "out"))
    assert err.value.path == tmp_path
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="no \\*.tfrecords") as err:
        convert(_cfg(tmp_path, tmp_path / "out"))
    assert err.value.path == tmp_path / "train"
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "traj_0_to_255.tfrecords").write_bytes(b"")
    (tmp_path / "train").rmdir()
    with pytest.raises(DataError, match="is empty"):
        convert(_cfg(tmp_path, tmp_path / "out"))


def test_cli_convert(source, tmp_path, capsys):
    out = tmp_path / "bair"
    args = ["data", "convert", "--tfrecords", str(source), "--out", str(out), "--validate-fraction", "0.2",
            "--seed", "3", "--no-progress"]
    assert cli_main(args) == 0
    assert "validate: 1 written" in capsys.readouterr().out
    assert len(list_sequences(out, "train")) == 4
    (source / "test" / "traj_0_to_255.tfrecords").write_bytes(b"\x01" * 20)
    assert cli_main(args[:5] + [str(tmp_path / "other"), "--no-progress"]) == 2
    assert "traj_0_to_255.tfrecords" in capsys.readouterr().err
