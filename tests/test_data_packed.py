"""The packed dataset form: exact round trip against the folder layout, direct generation, errors, CLI, training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_sequence

from bair_world.cli import main as cli_main
from bair_world.data import DataError
from bair_world.data.bair_folder import BairFolderDataset, read_labels, write_sequence
from bair_world.data.flow import dequantise_flow, quantise_flow, read_flow
from bair_world.data.open import open_dataset
from bair_world.data.packed import PackedDataset, is_packed, pack_dataset
from bair_world.data.seeds import sequence_seed
from bair_world.data.synthetic import write_dataset, write_packed
from bair_world.data.validate import check_dataset
from bair_world.sim import rollout

COUNTS = {"train": 3, "validate": 2, "test": 2}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A small synthetic dataset in the folder layout, with labels."""
    root = tmp_path_factory.mktemp("synth") / "folder"
    write_dataset(root, COUNTS, seed=7, workers=1, progress=False)
    return root


@pytest.fixture(scope="module")
def packed(folder, tmp_path_factory) -> Path:
    return pack_dataset(folder, tmp_path_factory.mktemp("packed") / "p", progress=False)


def _same_items(a, b) -> None:
    assert len(a) == len(b)
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) and x[k].dtype == y[k].dtype for k in x)


@pytest.mark.parametrize("seq_len", [30, 12])
def test_packed_items_equal_the_folder_items_exactly(folder, packed, seq_len):
    assert is_packed(packed) and not is_packed(folder)
    for split in COUNTS:
        folder_set, packed_set = BairFolderDataset(folder, split, seq_len), open_dataset(packed, split, seq_len)
        assert isinstance(packed_set, PackedDataset)
        _same_items(folder_set, packed_set)
        for i, seq in enumerate(folder_set.paths):
            assert np.array_equal(packed_set.labels(i), read_labels(seq, seq_len))
    files = sorted(str(p.relative_to(packed)) for p in packed.rglob("*") if p.is_file())
    assert files == ["packed.json"] + [f"{s}/{k}.npy" for s in sorted(COUNTS)
                                       for k in ("actions", "flow", "frames", "labels", "poses", "positions")]


@pytest.mark.parametrize("seq_len", [30, 12])
def test_targets_items_carry_the_worlds_labels_and_flow(folder, packed, seq_len):
    for split in COUNTS:
        folder_set = BairFolderDataset(folder, split, seq_len, targets=True)
        packed_set = open_dataset(packed, split, seq_len, targets=True)
        _same_items(folder_set, packed_set)
        for i in range(len(packed_set)):
            r = rollout(sequence_seed(7, split, i), 30, labels=True, flow=True)
            item = packed_set[i]
            assert item["labels"].dtype == torch.uint8 and item["flow"].dtype == torch.float32
            assert np.array_equal(item["labels"].numpy(), r.labels[:seq_len])
            true = r.flow[:seq_len].transpose(0, 3, 1, 2)  # (T, 64, 64, 2) -> (T, 2, 64, 64)
            assert np.array_equal(item["flow"].numpy(), dequantise_flow(quantise_flow(r.flow[:seq_len])))
            assert np.abs(item["flow"].numpy() - true).max() <= 1 / 16 and np.abs(true).max() > 0.5
    default = open_dataset(packed, "train", seq_len)[0]
    assert default.keys() == {"frames", "actions", "positions"}


def test_labels_pack_into_two_bits_and_back():
    from bair_world.data.packed import pack_labels, unpack_labels

    labels = np.random.default_rng(0).integers(0, 4, (2, 3, 64, 64), dtype=np.uint8)
    stored = pack_labels(labels)
    assert stored.shape == (2, 3, 64, 16) and np.array_equal(unpack_labels(stored), labels)
    with pytest.raises(ValueError, match="0..3"):
        pack_labels(labels + 4)


def test_direct_generation_equals_packing_the_folder(folder, packed, tmp_path):
    direct = tmp_path / "direct"
    report = write_packed(direct, COUNTS, seed=7, workers=2, progress=False)
    assert report.written == sum(COUNTS.values())
    for split in COUNTS:
        for kind in ("frames", "actions", "positions", "labels", "flow"):
            a, b = np.load(direct / split / f"{kind}.npy"), np.load(packed / split / f"{kind}.npy")
            assert a.dtype == b.dtype and np.array_equal(a, b), (split, kind)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_folder_without_labels_packs_without_and_mixed_labels_are_refused(tmp_path):
    src = tmp_path / "src"
    for i in range(2):
        write_sequence(src / "train" / "traj_0" / str(i), *make_sequence(i, length=5))
    out = pack_dataset(src, tmp_path / "p", progress=False)
    assert not (out / "train" / "labels.npy").exists() and PackedDataset(out, "train", 5).labels(0) is None
    assert not (out / "train" / "flow.npy").exists() and PackedDataset(out, "train", 5).data.flow is None
    with pytest.raises(DataError, match=r"train[/\\]labels.npy: the data has no labels.npy: motion losses need data "
                                        r"from the built-in pushing world"):
        open_dataset(out, "train", 5, targets=True)
    frames, actions, positions = make_sequence(9, length=5)
    write_sequence(src / "train" / "traj_0" / "0", frames, actions, positions, overwrite=True,
                   labels=np.zeros((5, 64, 64), np.uint8))
    with pytest.raises(DataError, match=r"1[/\\]labels.npz: missing"):
        pack_dataset(src, tmp_path / "q", progress=False)
    write_sequence(src / "train" / "traj_0" / "1", frames, actions, positions, overwrite=True,
                   labels=np.zeros((5, 64, 64), np.uint8))
    write_sequence(src / "train" / "traj_0" / "0", frames, actions, positions, overwrite=True,
                   labels=np.zeros((5, 64, 64), np.uint8), flow=np.ones((5, 64, 64, 2), np.float32))
    with pytest.raises(DataError, match=r"1[/\\]flow.npz: missing, while other sequences of 'train' have flow"):
        pack_dataset(src, tmp_path / "q", progress=False)
    assert not (tmp_path / "q").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with pytest.raises(FileExistsError):
        pack_dataset(src, out, progress=False)


def _edit_manifest(root: Path, edit) -> None:
    manifest = json.loads((root / "packed.json").read_text())
    edit(manifest)
    (root / "packed.json").write_text(json.dumps(manifest))


def test_a_pack_written_before_flow_reads_without_it(packed, tmp_path):
    root = _copy(packed, tmp_path / "p")
    for split in COUNTS:
        (root / split / "flow.npy").unlink()
    _edit_manifest(root, lambda m: [entry.pop("flow") for entry in m["splits"].values()])
    _same_items(open_dataset(root, "test"), open_dataset(packed, "test"))
    assert check_dataset(root).ok
    with pytest.raises(DataError, match=r"test[/\\]flow.npy: the data has no flow.npy"):
        open_dataset(root, "test", targets=True)


def _negative_shape(npy: Path) -> None:
    """The .npy header's first dimension made negative at the same header length ("(3, 30" -> "(-3,30"):
    numpy's memory map raises OverflowError."""
    data = npy.read_bytes()
    n = int(np.load(npy, mmap_mode="r").shape[0])
    npy.write_bytes(data.replace(f"({n}, 30".encode(), f"(-{n},30".encode(), 1))


def _copy(packed: Path, dest: Path) -> Path:
    import shutil

    return Path(shutil.copytree(packed, dest))


@pytest.mark.parametrize("damage, match", [
    (lambda r: (r / "train" / "frames.npy").unlink(), r"train[/\\]frames.npy: missing frames array"),
    (lambda r: (r / "train" / "frames.npy").write_bytes((r / "train" / "frames.npy").read_bytes()[:1000]),
     r"train[/\\]frames.npy: unreadable frames array"),
    (lambda r: np.save(r / "train" / "actions.npy", np.zeros((3, 30, 5), np.float32)),
     r"train[/\\]actions.npy: actions array is float32 \(3, 30, 5\)"),
    (lambda r: (r / "packed.json").write_text("{"), r"packed.json: unreadable manifest"),
    (lambda r: _negative_shape(r / "train" / "frames.npy"), r"train[/\\]frames.npy: unreadable frames array"),
    (lambda r: np.save(r / "train" / "flow.npy", np.zeros((3, 30, 64, 64, 2), np.int8)),
     r"train[/\\]flow.npy: flow array is int8 \(3, 30, 64, 64, 2\), the manifest says int8 \(3, 30, 2, 64, 64\)"),
    (lambda r: np.save(r / "train" / "flow.npy", np.zeros((3, 30, 2, 64, 64), np.float32)),
     r"train[/\\]flow.npy: flow array is float32"),
    (lambda r: (r / "train" / "flow.npy").unlink(), r"train[/\\]flow.npy: missing flow array"),
    (lambda r: _edit_manifest(r, lambda m: m["splits"]["train"].update(flow="yes")),
     r"packed.json: split 'train': malformed entry"),
])
def test_a_damaged_pack_is_refused_naming_the_file(packed, tmp_path, damage, match):
    root = _copy(packed, tmp_path / "p")
    damage(root)
    with pytest.raises(DataError, match=match):
        PackedDataset(root, "train")
    assert not check_dataset(root).ok


def test_cli_pack_then_check(folder, tmp_path, capsys):
    out = tmp_path / "p"
    assert cli_main(["data", "pack", str(folder), "--out", str(out), "--no-progress"]) == 0
    assert "train 3, validate 2, test 2 sequences in 19 files" in capsys.readouterr().out  # 6 kinds a split
    manifest = json.loads((out / "packed.json").read_text())
    assert manifest["source"]["manifest"]["seed"] == 7
    assert manifest["source"]["manifest"]["targets"] == ["labels", "flow", "poses"]
    assert all(entry["flow"] and entry["labels"] for entry in manifest["splits"].values())  # carried by `data pack`
    stored = np.load(out / "test" / "flow.npy")
    assert stored.dtype == np.int8 and stored.shape == (2, 30, 2, 64, 64)
    seq = sorted((folder / "test").glob("*/1"))[0]
    assert np.array_equal(dequantise_flow(stored[1]), read_flow(seq))  # the folder's values, exactly
    assert cli_main(["data", "check", str(out), "--no-progress"]) == 0
    assert "all sequences are valid" in capsys.readouterr().out
    actions = np.load(out / "validate" / "actions.npy")
    actions[1, 4, 0] = np.nan
    np.save(out / "validate" / "actions.npy", actions)
    report = check_dataset(out)
    assert report.bad_sequences["validate"] == 1 and "validate/actions.npy: sequences [1] hold NaN" in str(report.errors[0])
    from bair_world.references import FolderReferences

    with pytest.raises(DataError, match=r"validate/actions.npy: sequence 1, step 4 holds \[nan"):
        FolderReferences(out, "validate")  # what gym.make(data_root=...) and the counterfactual starts read
    assert cli_main(["data", "pack", str(folder), "--out", str(out), "--no-progress"]) == 2


def test_training_reads_a_packed_root_like_the_folder(folder, packed, tmp_path):
    from bair_world.training import presets
    from bair_world.training.data import condition_stats
    from bair_world.training.train import train

    for split in ("train", "validate"):
        a, b = condition_stats(BairFolderDataset(folder, split)), condition_stats(open_dataset(packed, split))
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    cfg = presets.training_preset("tiny").replace(data_root=packed, log_dir=tmp_path / "runs", name="p", epochs=1,
                                         progress=False, sample_every=0, val_sequences=2)
    folder_cfg = cfg.replace(data_root=folder, name="f")
    packed_run, folder_run = train(cfg), train(folder_cfg)
    assert packed_run["step"] == folder_run["step"] > 0
    assert packed_run["val_psnr"] == folder_run["val_psnr"]  # same data, same seed: the same run
