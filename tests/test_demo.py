"""`bair-world demo`: replay through the vector env, PSNR table, video; clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from helpers import make_tiny_checkpoint
from bair_world.cli import main
from bair_world.envs.demo import format_table


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("demo") / "tiny")


def test_demo_prints_the_table_and_writes_the_video(ckpt, tmp_path, capsys):
    out = tmp_path / "demo.gif"
    rc = main(["demo", "--checkpoint", str(ckpt), "--episodes", "2", "--steps", "3", "--out", str(out),
               "--device", "cpu"])
    text = capsys.readouterr().out
    assert rc == 0, text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["step", "frame"])
    rows = [line.split() for line in lines[header + 1:header + 4]]
    assert [r[:2] for r in rows] == [["1", "2"], ["2", "3"], ["3", "4"]]  # step, frame index (n_past = 2)
    assert all(np.isfinite(float(v)) for r in rows for v in r[2:])
    assert "built-in pushing world" in text and str(out.resolve()) in text and "bair-world train" in text and "python training" not in text
    with Image.open(out) as gif:  # rows = 2 episodes stacked; one frame per step (2 context + 3)
        assert gif.height > 2 * 64 * 3 and gif.width > 3 * 64 * 3
        assert getattr(gif, "n_frames", 1) >= 2


def test_demo_errors_are_one_line_and_exit_2(ckpt, tmp_path, capsys):
    assert main(["demo", "--checkpoint", str(tmp_path / "missing"), "--out", str(tmp_path / "v.mp4")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["demo", "--checkpoint", str(ckpt), "--out", str(tmp_path / "v.avi")]) == 2
    assert ".mp4 or .gif" in capsys.readouterr().err
    assert main(["demo", "--checkpoint", str(ckpt), "--episodes", "0"]) == 2
    assert not (tmp_path / "v.mp4").exists()


def test_table_compares_model_and_copy_last():
    psnr = np.array([[30.0, 20.0], [28.0, 22.0]])
    base = np.array([[25.0, 25.0], [25.0, 25.0]])
    table = format_table(psnr, base, n_past=2)
    assert "29.00" in table and "+4.00" in table and "-4.00" in table
    assert "beats copy-last-frame on 1/2 steps" in table


def test_demo_reports_the_regions_beside_copy_last(ckpt, tmp_path, capsys):
    assert main(["demo", "--checkpoint", str(ckpt), "--episodes", "1", "--steps", "4", "--out",
                 str(tmp_path / "d.gif"), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  arm ") or
             line.startswith("  objects ")}
    assert set(lines) == {"arm", "objects"} and "by region" in text
    for line in lines.values():  # a random-weight model: the verdict follows the numbers
        model, base = float(line.split()[2]), float(line.split()[5])
        assert ("BELOW copy-last" in line) == (model <= base)


def test_region_lines_say_where_the_model_is_below_copy_last():
    from bair_world.envs.demo import format_regions

    text = format_regions({"arm": (16.2, 10.3), "objects": (18.7, 21.2)})
    arm, objects = text.splitlines()[1:]
    assert "+5.90" in arm and "above copy-last" in arm
    assert "-2.50" in objects and "BELOW copy-last" in objects and "vanish" in objects


def test_region_masks_follow_the_recorded_labels():
    import torch

    from bair_world.regions import region_masks

    labels = torch.zeros((1, 3, 4, 4), dtype=torch.uint8)
    labels[0, 1, 0, 0] = 1  # arm in frame 1 (the last context frame)
    labels[0, 2, 1, 1] = 2  # an object in frame 2
    masks = region_masks(labels, n_past=2)
    assert masks["arm"].shape == (1, 1, 4, 4) and masks["arm"][0, 0, 0, 0] and masks["arm"].sum() == 1
    assert masks["objects"][0, 0, 1, 1] and masks["objects"].sum() == 1
    assert masks["static"].sum() == 14
