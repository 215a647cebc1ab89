"""`write_sample_gif` goes through `bair_world.video.write_gif`: decoded frames are the composed ones."""

import numpy as np
import torch
from PIL import Image, ImageSequence

from bair_world.training.reporting import write_sample_gif


def test_sample_gif_decodes_to_truth_gap_prediction_rows(tmp_path):
    b, n_past, n_future = 2, 2, 3
    g = torch.Generator().manual_seed(0)
    truth = torch.randint(0, 2, (b, n_past + n_future, 3, 64, 64), generator=g).float()  # 8 colours: lossless GIF
    pred = torch.randint(0, 2, (b, n_future, 3, 64, 64), generator=g).float()
    path = write_sample_gif(tmp_path / "samples" / "epoch_0001.gif", truth, pred, n_past, fps=4)

    with Image.open(path) as im:
        decoded = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(im)]
        assert im.info.get("duration") == 250 and im.info.get("loop") == 0
    assert len(decoded) == n_past + n_future  # random frames: no two consecutive ones merge
    full = torch.cat([truth[:, :n_past], pred], dim=1)
    for t, frame in enumerate(decoded):
        assert frame.shape == (b * 64, 130, 3)
        for i in range(b):
            rows = frame[i * 64:(i + 1) * 64]
            np.testing.assert_array_equal(rows[:, :64], truth[i, t].permute(1, 2, 0).numpy() * 255)
            assert (rows[:, 64:66] == 255).all()  # white gap
            expected = full[i, t].permute(1, 2, 0).numpy() * 255
            if t >= n_past:  # predicted frames: red left and right edge
                expected[:, [0, -1]] = (255, 0, 0)
            np.testing.assert_array_equal(rows[:, 66:], expected)
    assert [p.name for p in (tmp_path / "samples").iterdir()] == ["epoch_0001.gif"]  # no temporary left
