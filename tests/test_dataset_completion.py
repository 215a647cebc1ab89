"""An interrupted dataset writer leaves a folder every reader refuses as incomplete, until a re-run completes it."""

from __future__ import annotations

import pytest
from helpers import make_sequence, write_bair_tfrecord

from bair_world.cli import main as cli_main
from bair_world.data import DataError
from bair_world.data import tfrecord
from bair_world.data.bair_folder import BairFolderDataset
from bair_world.data.completion import MARKER
from bair_world.data.synthetic import write_dataset
from bair_world.data.tfrecord import ConvertConfig, convert
from bair_world.training.evaluate import main as evaluate_main
from bair_world.training.train import main as train_cli


class Killed(BaseException):
    """Stands in for kill -9 in the middle of a conversion (nothing after it runs)."""


@pytest.fixture
def interrupted(tmp_path, monkeypatch):
    """A conversion killed after its train and validate sequences, before any test sequence."""
    src = tmp_path / "softmotion30_44k"
    for split, seeds in (("train", range(4)), ("test", range(10, 12))):
        (src / split).mkdir(parents=True)
        write_bair_tfrecord(src / split / "traj_0_to_1.tfrecords", [make_sequence(s) for s in seeds])
    out = tmp_path / "bair"
    real_write = tfrecord.write_sequence

    def write_or_die(dest, *arrays, **kw):
        if "/test/" in str(dest):
            raise Killed
        return real_write(dest, *arrays, **kw)

    monkeypatch.setattr(tfrecord, "write_sequence", write_or_die)
    with pytest.raises(Killed):
        convert(ConvertConfig(src, out, validate_fraction=0.25, progress=False))
    monkeypatch.setattr(tfrecord, "write_sequence", real_write)
    return src, out


def test_data_check_training_and_evaluation_refuse_a_partial_conversion(interrupted, tmp_path, capsys):
    src, out = interrupted
    assert (out / "convert.json").is_file() and (out / MARKER).is_file() and not (out / "test").exists()

    assert cli_main(["data", "check", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0] and "incomplete dataset" in err[0]
    assert f"bair-world data convert --tfrecords {src} --out {out}" in err[0]  # the command that completes it

    with pytest.raises(DataError, match="incomplete dataset"):
        BairFolderDataset(out, "train")
    assert train_cli(["--preset", "tiny", "--data-root", str(out), "--log-dir", str(tmp_path / "runs"),
                      "--name", "r", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "incomplete dataset" in err[0]
    assert not (tmp_path / "runs" / "r").exists()

    assert evaluate_main(["--checkpoint", str(tmp_path / "none"), "--data-root", str(out)]) == 2  # checkpoint first
    from helpers import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(tmp_path / "ckpt")
    capsys.readouterr()
    assert evaluate_main(["--checkpoint", str(ckpt), "--data-root", str(out), "--split", "validate",
                          "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "incomplete dataset" in err[0]


def test_rerunning_the_conversion_completes_it(interrupted, capsys):
    src, out = interrupted
    summary = convert(ConvertConfig(src, out, validate_fraction=0.25, progress=False))
    assert summary.written["test"] == 2 and summary.skipped["train"] + summary.skipped["validate"] == 4
    assert not (out / MARKER).exists()
    assert cli_main(["data", "check", str(out), "--no-progress"]) == 0
    assert len(BairFolderDataset(out, "test")) == 2


def test_a_refused_conversion_marks_nothing(interrupted, tmp_path):
    """Converting other settings into the folder is refused before anything is written."""
    src, out = interrupted
    (out / MARKER).unlink()  # pretend it had finished
    with pytest.raises(DataError, match="other settings"):
        convert(ConvertConfig(src, out, validate_fraction=0.5, progress=False))
    assert not (out / MARKER).exists()


def test_an_interrupted_synth_is_incomplete_until_rerun(tmp_path, monkeypatch):
    from bair_world.data import synthetic

    def die(task):
        raise Killed

    monkeypatch.setattr(synthetic, "_generate", die)
    with pytest.raises(Killed):
        write_dataset(tmp_path / "s", {"train": 1, "validate": 0, "test": 0}, workers=1, progress=False, length=3)
    with pytest.raises(DataError, match=r"incomplete dataset: `bair-world data synth --out .* --train 1"):
        BairFolderDataset(tmp_path / "s", "train")
    monkeypatch.undo()
    write_dataset(tmp_path / "s", {"train": 1, "validate": 0, "test": 0}, workers=1, progress=False, length=3)
    assert len(BairFolderDataset(tmp_path / "s", "train", seq_len=3)) == 1
