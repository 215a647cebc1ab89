"""The BAIR folder layout: round trips, the Dataset, every bad-input case, and the real BAIR sequence."""

from __future__ import annotations

import shutil
import tracemalloc
import zlib

import cv2
import numpy as np
import pytest
import torch
from helpers import make_sequence

from bair_world.cli import main as cli_main
from bair_world.data import BairFolderDataset, DataError, collate
from bair_world.data.bair_folder import (MAX_FRAME_BYTES, PNG_HEADER_BYTES, list_sequences, png_size, read_frame,
                                         read_sequence, read_table, remove_partial_writes, write_sequence)
from bair_world.data.flow import FLOW_SCALE, dequantise_flow, quantise_flow, read_flow


@pytest.fixture
def seq_dir(tmp_path):
    """One valid 30-step sequence at tmp/root/train/traj_0_to_255/0."""
    path = tmp_path / "root" / "train" / "traj_0_to_255" / "0"
    write_sequence(path, *make_sequence(0))
    return path


def test_write_read_round_trip_is_exact(seq_dir):
    frames, actions, positions = make_sequence(0)
    got_f, got_a, got_p = read_sequence(seq_dir)
    assert got_f.dtype == np.uint8 and got_f.shape == (30, 64, 64, 3)
    assert got_a.dtype == np.float32 and got_p.dtype == np.float32
    np.testing.assert_array_equal(got_f, frames)
    np.testing.assert_array_equal(got_a, actions)
    np.testing.assert_array_equal(got_p, positions)
    # RGB on our side, BGR inside OpenCV: the file must decode to the reversed channels.
    np.testing.assert_array_equal(cv2.imread(str(seq_dir / "0.png"))[:, :, ::-1], frames[0])
    assert sorted(p.name for p in seq_dir.parent.iterdir()) == ["0"]  # no temporary folder left behind


def test_read_takes_leading_steps_and_none_reads_all(seq_dir):
    frames, _, _ = make_sequence(0)
    got_f, got_a, _ = read_sequence(seq_dir, seq_len=5)
    assert got_f.shape == (5, 64, 64, 3) and got_a.shape == (5, 4)
    np.testing.assert_array_equal(got_f, frames[:5])
    assert read_sequence(seq_dir, seq_len=None)[0].shape[0] == 30


def test_write_refuses_existing_unless_overwrite(seq_dir):
    with pytest.raises(FileExistsError, match="already exists"):
        write_sequence(seq_dir, *make_sequence(1))
    write_sequence(seq_dir, *make_sequence(1, length=4), overwrite=True)
    np.testing.assert_array_equal(read_sequence(seq_dir, None)[0], make_sequence(1, length=4)[0])
    assert sorted(p.name for p in seq_dir.parent.iterdir()) == ["0"]


def test_write_validates_shapes_and_leaves_nothing(tmp_path):
    frames, actions, positions = make_sequence(0, length=3)
    dest = tmp_path / "t" / "s"
    with pytest.raises(ValueError, match="actions must be"):
        write_sequence(dest, frames, actions[:2], positions)
    with pytest.raises(ValueError, match="frames must be uint8"):
        write_sequence(dest, frames.astype(np.float32), actions, positions)
    positions[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_sequence(dest, frames, actions, positions)
    assert not dest.exists()


def test_failed_write_removes_temporary_folder(tmp_path, monkeypatch):
    dest = tmp_path / "t" / "s"

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savetxt", fail)
    with pytest.raises(OSError, match="disk full"):
        write_sequence(dest, *make_sequence(0, length=2))
    assert list((tmp_path / "t").iterdir()) == []


def test_remove_partial_writes(tmp_path):
    (tmp_path / "train" / "traj" / ".3.partial-abc").mkdir(parents=True)
    (tmp_path / "train" / "traj" / "4").mkdir()
    assert remove_partial_writes(tmp_path) == 1
    assert [p.name for p in (tmp_path / "train" / "traj").iterdir()] == ["4"]


def test_list_sequences_natural_order_ignores_hidden(tmp_path):
    for traj, seq in [("traj_256_to_511", "0"), ("traj_0_to_255", "10"), ("traj_0_to_255", "2")]:
        (tmp_path / "train" / traj / seq).mkdir(parents=True)
    (tmp_path / "train" / "traj_0_to_255" / ".5.partial-x").mkdir()
    got = [p.relative_to(tmp_path / "train").as_posix() for p in list_sequences(tmp_path, "train")]
    assert got == ["traj_0_to_255/2", "traj_0_to_255/10", "traj_256_to_511/0"]


def test_list_sequences_missing_or_empty_split(tmp_path):
    with pytest.raises(DataError, match="does not exist") as err:
        list_sequences(tmp_path, "train")
    assert err.value.path == tmp_path / "train"
    (tmp_path / "test" / "traj_0").mkdir(parents=True)
    with pytest.raises(DataError, match="no sequences") as err:
        list_sequences(tmp_path, "test")
    assert str(tmp_path / "test") in str(err.value)


def test_list_sequences_sequence_one_level_too_high(tmp_path):
    write_sequence(tmp_path / "train" / "5", *make_sequence(0, length=2))
    with pytest.raises(DataError, match="holds a sequence directly"):
        list_sequences(tmp_path, "train")


def test_dataset_items_and_collate(tmp_path):
    for i in range(3):
        write_sequence(tmp_path / "validate" / "traj_0_to_255" / str(i), *make_sequence(i))
    ds = BairFolderDataset(tmp_path, "validate", seq_len=12, cache=True)
    assert len(ds) == 3
    item = ds[1]
    assert item["frames"].shape == (12, 3, 64, 64) and item["frames"].dtype == torch.float32
    assert item["actions"].shape == (12, 4) and item["positions"].shape == (12, 3)
    frames, actions, _ = make_sequence(1)
    # item i is sequence i of the sorted listing, frames scaled to [0, 1] channels-first
    torch.testing.assert_close(item["frames"][3, 0] * 255, torch.from_numpy(frames[3, :, :, 0]).float())
    torch.testing.assert_close(item["actions"], torch.from_numpy(actions[:12]))
    torch.testing.assert_close(ds[1]["frames"], item["frames"])  # served from the cache
    batch = collate([ds[0], ds[2]])
    assert batch.frames.shape == (2, 12, 3, 64, 64) and batch.cond.shape == (2, 12, 7)
    assert float(batch.frames.min()) >= 0.0 and float(batch.frames.max()) <= 1.0
    with pytest.raises(IndexError):
        ds[3]
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate)
    assert [len(b) for b in loader] == [2, 1]
    assert item.keys() == {"frames", "actions", "positions"}  # the default reads no targets
    assert batch.labels is None and batch.flow is None and batch.to("cpu").flow is None


# ---- targets: region labels and the true flow ----------------------------------------------------


def _flow(seed: int, length: int = 30) -> np.ndarray:
    """Random float32 flow (T, 64, 64, 2) in pixels, |flow| up to 9 px; frame 0 zeros like the sim's."""
    flow = np.random.default_rng(seed).uniform(-9, 9, (length, 64, 64, 2)).astype(np.float32)
    flow[0] = 0
    return flow


def _labels(seed: int, length: int = 30) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 3, (length, 64, 64), dtype=np.uint8)


def test_flow_is_stored_in_eighth_pixels_channels_first_and_clipped():
    flow = _flow(0, 3)
    flow[1, 2, 5] = (20.0, -30.0)  # past the int8 range: clipped to +-127/8
    stored = quantise_flow(flow)
    assert stored.dtype == np.int8 and stored.shape == (3, 2, 64, 64) and FLOW_SCALE == 8
    back = dequantise_flow(stored)
    assert back.dtype == np.float32 and back.shape == (3, 2, 64, 64)
    assert back[1, 0, 2, 5] == 127 / 8 and back[1, 1, 2, 5] == -127 / 8
    flow[1, 2, 5] = 0
    back[1, :, 2, 5] = 0
    assert np.abs(back - flow.transpose(0, 3, 1, 2)).max() <= 1 / 16  # (T, 64, 64, 2) -> (T, 2, 64, 64)
    with pytest.raises(ValueError, match="float"):
        quantise_flow(flow.transpose(0, 3, 1, 2))  # channels first is the stored layout, not the input
    flow[2, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        quantise_flow(flow)


def test_flow_round_trip_through_the_folder_and_targets_items(tmp_path):
    root = tmp_path / "root"
    for i in range(2):
        write_sequence(root / "train" / "traj_0_to_255" / str(i), *make_sequence(i), labels=_labels(i), flow=_flow(i))
    seq = root / "train" / "traj_0_to_255" / "1"
    flow = read_flow(seq)
    assert flow.dtype == np.float32 and flow.shape == (30, 2, 64, 64)
    np.testing.assert_array_equal(flow, dequantise_flow(quantise_flow(_flow(1))))
    assert np.abs(flow - _flow(1).transpose(0, 3, 1, 2)).max() <= 1 / 16
    assert read_flow(seq, 7).shape == (7, 2, 64, 64)
    for cache in (False, True):
        ds = BairFolderDataset(root, "train", seq_len=12, cache=cache, targets=True)
        item = ds[1]
        assert item["labels"].dtype == torch.uint8 and item["labels"].shape == (12, 64, 64)
        assert item["flow"].dtype == torch.float32 and item["flow"].shape == (12, 2, 64, 64)
        assert torch.equal(item["labels"], torch.from_numpy(_labels(1)[:12]))
        assert torch.equal(item["flow"], torch.from_numpy(flow[:12]))
        assert torch.equal(ds[1]["flow"], item["flow"])  # again (from the cache)
    batch = collate([ds[0], ds[1]]).to("cpu")
    assert batch.labels.shape == (2, 12, 64, 64) and batch.flow.shape == (2, 12, 2, 64, 64)
    assert torch.equal(batch.flow[1], item["flow"]) and torch.equal(batch.labels[1], item["labels"])
    assert BairFolderDataset(root, "train", seq_len=12)[1].keys() == {"frames", "actions", "positions"}


def test_targets_on_data_without_them_name_the_missing_file(tmp_path):
    root = tmp_path / "root"
    frames, actions, positions = make_sequence(0, length=4)
    write_sequence(root / "train" / "t" / "0", frames, actions, positions)
    with pytest.raises(DataError, match=r"0[/\\]labels.npz: .*no labels.npz: motion losses need data from the "
                                        r"built-in pushing world \(bair-world data synth\)"):
        BairFolderDataset(root, "train", seq_len=4, targets=True)
    write_sequence(root / "train" / "t" / "0", frames, actions, positions, overwrite=True, labels=_labels(0, 4),
                   flow=_flow(0, 4))
    write_sequence(root / "train" / "t" / "1", frames, actions, positions, labels=_labels(1, 4))
    ds = BairFolderDataset(root, "train", seq_len=4, targets=True)
    assert ds[0]["flow"].shape == (4, 2, 64, 64)
    with pytest.raises(DataError, match=r"1[/\\]flow.npz: .*no flow.npz: motion losses") as err:
        ds[1]
    assert err.value.path == root / "train" / "t" / "1" / "flow.npz"


@pytest.mark.parametrize("damage, match", [
    (lambda path: path.write_bytes(b"PK\x03\x04 not a zip"), "unreadable flow file"),
    (lambda path: np.savez_compressed(path, flow=np.zeros((30, 64, 64, 2), np.int8)),
     r"flow must be int8 \(T, 2, 64, 64\)"),  # channels last
    (lambda path: np.savez_compressed(path, flow=np.zeros((30, 2, 64, 64), np.float32)), "got float32"),
    (lambda path: np.savez_compressed(path, flow=np.zeros((5, 2, 64, 64), np.int8)),
     "has 5 flow steps, expected at least 30"),
    (lambda path: np.savez_compressed(path, motion=np.zeros((30, 2, 64, 64), np.int8)),
     "unreadable flow file .*KeyError"),
    (lambda path: np.savez_compressed(path, flow=np.zeros((20_000, 2, 64, 64), np.int8)), "decompresses to"),
])
def test_a_corrupt_or_misshapen_flow_file_is_refused_naming_it(tmp_path, damage, match):
    seq = tmp_path / "root" / "train" / "t" / "0"
    write_sequence(seq, *make_sequence(0), labels=_labels(0), flow=_flow(0))
    damage(seq / "flow.npz")
    with pytest.raises(DataError, match=match) as err:
        read_flow(seq, 30)
    assert err.value.path == seq / "flow.npz"
    with pytest.raises(DataError, match="flow.npz: "):
        BairFolderDataset(tmp_path / "root", "train", targets=True)[0]


def test_write_refuses_flow_of_the_wrong_shape_or_length(tmp_path):
    frames, actions, positions = make_sequence(0, length=3)
    dest = tmp_path / "t" / "s"
    with pytest.raises(ValueError, match=r"s: flow must be float \(\.\.\., 64, 64, 2\)"):
        write_sequence(dest, frames, actions, positions, flow=_flow(0, 3).transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match="flow must have the frames' 3 steps"):
        write_sequence(dest, frames, actions, positions, flow=_flow(0, 4))
    assert not dest.exists()


# ---- bad input: each error names the exact file --------------------------------------------------


def _expect_error(seq_dir, filename, match, seq_len=30):
    with pytest.raises(DataError, match=match) as err:
        read_sequence(seq_dir, seq_len)
    assert err.value.path == seq_dir / filename
    assert str(seq_dir / filename) in str(err.value)


def test_missing_frame(seq_dir):
    (seq_dir / "17.png").unlink()
    _expect_error(seq_dir, "17.png", "missing frame")


def test_wrong_image_size(seq_dir):
    cv2.imwrite(str(seq_dir / "4.png"), np.zeros((64, 48, 3), np.uint8))
    _expect_error(seq_dir, "4.png", "48x64, expected 64x64")


def test_wrong_channel_count(seq_dir):
    cv2.imwrite(str(seq_dir / "2.png"), np.zeros((64, 64), np.uint8))
    _expect_error(seq_dir, "2.png", "1 channel")
    cv2.imwrite(str(seq_dir / "2.png"), np.zeros((64, 64, 4), np.uint8))
    _expect_error(seq_dir, "2.png", "4 channel")


def test_unreadable_png(seq_dir):
    data = (seq_dir / "9.png").read_bytes()
    (seq_dir / "9.png").write_bytes(data[: len(data) // 2])  # truncated
    _expect_error(seq_dir, "9.png", "corrupt PNG")
    (seq_dir / "9.png").write_bytes(b"not an image at all")
    _expect_error(seq_dir, "9.png", "not a PNG")


def _png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose IHDR declares ``width`` x ``height`` (8-bit RGB) and whose one IDAT holds a few
    rows' worth: an image bomb's header (decoding it would allocate width * height * 3 bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    rows = zlib.compress(b"\0" * (3 * width + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def test_a_real_png_is_read_header_first(tmp_path):
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    ok, png = cv2.imencode(".png", frame[:, :, ::-1])  # RGB -> BGR
    path = tmp_path / "0.png"
    path.write_bytes(png.tobytes())
    assert png_size(png.tobytes()[:PNG_HEADER_BYTES], path) == (64, 64)
    np.testing.assert_array_equal(read_frame(path), frame)


@pytest.mark.parametrize("size", [20000, 60000])
def test_an_image_bomb_is_refused_from_its_header(seq_dir, monkeypatch, size):
    (seq_dir / "6.png").write_bytes(_png_declaring(size, size))
    decoded = []
    monkeypatch.setattr(cv2, "imdecode", lambda *a: decoded.append(a))  # never reached for the bomb
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=f"image is {size}x{size}, expected 64x64") as err:
            read_frame(seq_dir / "6.png")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.value.path == seq_dir / "6.png" and decoded == [] and peak < 1 << 20
    monkeypatch.undo()
    _expect_error(seq_dir, "6.png", f"image is {size}x{size}, expected 64x64")  # through every folder reader


def test_a_short_or_headerless_png_is_refused_naming_it(seq_dir):
    png = (seq_dir / "3.png").read_bytes()
    for data, match in [(png[:20], "truncated PNG: 20 bytes, shorter than its 33-byte header"),
                        (b"", "truncated PNG: 0 bytes"), (png[:5], "truncated PNG: 5 bytes"),
                        (b"GIF89a" + png[6:], "not a PNG file"),
                        (png[:8] + b"\0\0\0\x0dIHDX" + png[16:], "no IHDR header chunk"),
                        (_png_declaring(0, 64), "declares a 0x64 image"),
                        (_png_declaring(64, 48), "image is 64x48, expected 64x64")]:
        (seq_dir / "3.png").write_bytes(data)
        _expect_error(seq_dir, "3.png", match)
    (seq_dir / "3.png").write_bytes(png + b"\0" * MAX_FRAME_BYTES)  # a frame cannot be this large
    _expect_error(seq_dir, "3.png", "frame file larger than 1,048,576 bytes")


def test_a_bomb_in_a_dataset_is_one_line_of_data_check(seq_dir, capsys):
    (seq_dir / "12.png").write_bytes(_png_declaring(60000, 60000))
    rc = cli_main(["data", "check", str(seq_dir.parents[2]), "--no-progress"])
    out = capsys.readouterr()
    assert rc == 1 and "Traceback" not in out.out + out.err and "cv2" not in out.out + out.err
    assert f"{seq_dir / '12.png'}: image is 60000x60000, expected 64x64" in out.out


def test_missing_csv(seq_dir):
    (seq_dir / "endeffector_positions.csv").unlink()
    _expect_error(seq_dir, "endeffector_positions.csv", "missing CSV")


def test_csv_wrong_row_count(seq_dir):
    lines = (seq_dir / "actions.csv").read_text().splitlines()
    (seq_dir / "actions.csv").write_text("\n".join(lines[:29]) + "\n")
    _expect_error(seq_dir, "endeffector_positions.csv", "30 rows but actions.csv has 29")
    pos = (seq_dir / "endeffector_positions.csv").read_text().splitlines()
    (seq_dir / "endeffector_positions.csv").write_text("\n".join(pos[:29]) + "\n")
    _expect_error(seq_dir, "actions.csv", "29 rows, expected at least 30")


def test_csv_wrong_column_count(seq_dir):
    lines = (seq_dir / "actions.csv").read_text().splitlines()
    lines[6] = ",".join(lines[6].split(",")[:3])
    (seq_dir / "actions.csv").write_text("\n".join(lines) + "\n")
    _expect_error(seq_dir, "actions.csv", "row 7 has 3 columns, expected 4")


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_csv_non_finite(seq_dir, bad):
    lines = (seq_dir / "endeffector_positions.csv").read_text().splitlines()
    lines[3] = f"0.5,{bad},0.2"
    (seq_dir / "endeffector_positions.csv").write_text("\n".join(lines) + "\n")
    _expect_error(seq_dir, "endeffector_positions.csv", "row 4, column 2 is")


def test_csv_non_numeric(seq_dir):
    lines = (seq_dir / "actions.csv").read_text().splitlines()
    lines[0] = "0.1,abc,0,0"
    (seq_dir / "actions.csv").write_text("\n".join(lines) + "\n")
    _expect_error(seq_dir, "actions.csv", "'abc' is not a number")


@pytest.mark.parametrize("bad", ["1_0", "0x1p-2", "1__0", "_1"])
def test_csv_numbers_are_plain_decimals(seq_dir, bad):
    # issue 32: Python's float() reads "1_0" as 10.0; a BAIR CSV holds plain decimals only
    lines = (seq_dir / "actions.csv").read_text().splitlines()
    lines[2] = f"0.1,{bad},0,0"
    (seq_dir / "actions.csv").write_text("\n".join(lines) + "\n")
    _expect_error(seq_dir, "actions.csv", f"row 3, column 2: {bad!r} is not a number")


def test_csv_numbers_in_every_decimal_form_are_read(seq_dir):
    lines = (seq_dir / "actions.csv").read_text().splitlines()
    lines[0] = " -1.5e-3 ,+2, .5 ,7."
    (seq_dir / "actions.csv").write_text("\n".join(lines) + "\n")
    assert read_table(seq_dir / "actions.csv", 4)[0].tolist() == pytest.approx([-1.5e-3, 2, 0.5, 7])


def test_frame_past_csv_end_only_when_reading_full_length(seq_dir):
    shutil.copy(seq_dir / "0.png", seq_dir / "30.png")
    assert read_sequence(seq_dir, 30)[0].shape[0] == 30
    _expect_error(seq_dir, "30.png", "past the 30 rows", seq_len=None)


# ---- conformance with one real BAIR sequence ------------------------------------------------------


def test_real_bair_sequence(real_bair_root):
    seq = real_bair_root / "test" / "GT_175" / "175"
    ds = BairFolderDataset(real_bair_root, "test")
    assert ds.paths == [seq]
    frames, actions, positions = read_sequence(seq)
    assert frames.shape == (30, 64, 64, 3) and actions.shape == (30, 4) and positions.shape == (30, 3)
    # independent reads: OpenCV BGR pixel and the first CSV value as text
    bgr = cv2.imread(str(seq / "0.png"), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(frames[0, 40, 20], bgr[40, 20, ::-1])
    assert actions[0, 0] == np.float32(float((seq / "actions.csv").read_text().split(",")[0]))
    assert actions[0, 0] == np.float32(-5.305594950914382935e-02)
    assert positions[0, 0] == np.float32(5.144907832145690918e-01)
    # BAIR units: deltas within about +-0.07, whole-number gripper columns, positions in the workspace
    assert np.abs(actions[:, :2]).max() < 0.1
    np.testing.assert_array_equal(actions[:, 2:], np.round(actions[:, 2:]))
    assert (positions[:, 0] > 0.35).all() and (positions[:, 0] < 0.85).all()
    assert (positions[:, 2] > 0.15).all() and (positions[:, 2] < 0.35).all()
    np.testing.assert_array_equal(actions[0::2], actions[1::2])  # each action held for two steps
    item = ds[0]
    assert item["frames"].shape == (30, 3, 64, 64) and 0.0 <= float(item["frames"].min()) < float(item["frames"].max()) <= 1.0
