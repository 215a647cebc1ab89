"""Data policies (`bair_world.sim.policy.POLICIES`): scripted unchanged, push / random / mixed sequences
reproducible from (policy, seed), recorded in the manifest, and started in the true world by the
counterfactual evaluation and the envs."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import numpy as np
import pytest
from helpers import make_tiny_checkpoint

from bair_world import counterfactual as cf
from bair_world.cli import main as cli_main
from bair_world.data.errors import DataError
from bair_world.data.seeds import recorded_policy, sequence_seed
from bair_world.data.synthetic import write_dataset, write_packed
from bair_world.envs.push_world_env import start_world as env_start_world
from bair_world.envs.references import FolderReferences
from bair_world.sim import action_bounds, replay_world, rollout, start_world
from bair_world.sim.policy import MIXED_SHARES, POLICIES, sequence_policy

CHOICES = "choose from " + ", ".join(POLICIES)  # scripted, push, random, sweep, mixed


def _digest(r) -> str:
    h = hashlib.sha256()
    for array in (r.frames, r.actions, r.positions, r.labels, r.flow):
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


def test_scripted_reproduces_the_sequences_made_before_policies():
    # sha256 of rollout(seed, 8, labels=True, flow=True) computed with the code before data policies existed
    before = {sequence_seed(0, "test", 0): "c38a8167cf5b2160", sequence_seed(0, "train", 1): "2360a480c0f0950e",
              7: "64d28cc2814ea4b2"}
    for seed, digest in before.items():
        assert _digest(rollout(seed, 8, labels=True, flow=True)) == digest
    assert _digest(rollout(7, 8, labels=True, flow=True, policy="scripted")) == before[7]


@pytest.mark.parametrize("policy", ["push", "random", "mixed"])
def test_same_seed_and_policy_same_bytes(policy):
    a, b = (rollout(11, 6, labels=True, flow=True, policy=policy) for _ in range(2))
    assert _digest(a) == _digest(b)
    assert np.array_equal(a.frames[0], rollout(11, 1).frames[0])  # the policy drives the arm, not the scene


def test_push_and_random_actions_are_held_two_steps_and_executable():
    low, high = action_bounds()
    scripted = rollout(3, 10).actions
    for policy in ("push", "random"):
        actions = rollout(3, 10, policy=policy).actions.astype(np.float32)  # as a dataset stores them
        np.testing.assert_array_equal(actions[0::2], actions[1::2])
        assert (actions >= low).all() and (actions <= high).all()
        np.testing.assert_array_equal(actions[:, 2:], np.round(actions[:, 2:]))
        assert not np.allclose(actions, scripted)
    random = rollout(3, 10, policy="random").actions
    assert len({tuple(row) for row in random[0::2, 2:]}) > 1  # whole-number columns drawn, not fixed


def test_mixed_draws_each_policy_from_the_seed_by_its_shares():
    picks = [sequence_policy("mixed", sequence_seed(0, "train", i)) for i in range(4000)]
    counts = Counter(picks)
    for name, share in MIXED_SHARES:
        assert abs(counts[name] / len(picks) - share) < 0.03, counts
    assert [sequence_policy("mixed", sequence_seed(0, "test", i)) for i in range(3)] == ["scripted", "random", "push"]
    seed = sequence_seed(0, "test", 1)
    assert _digest(rollout(seed, 6, labels=True, flow=True, policy="mixed")) == _digest(
        rollout(seed, 6, labels=True, flow=True, policy="random"))


@pytest.mark.parametrize("policy", ["push", "random"])
def test_the_true_world_starts_from_a_push_or_random_sequence_and_names_a_wrong_policy(policy):
    seed = 5
    frames = rollout(seed, 8, policy=policy).frames
    world = start_world(seed, frames, 2, policy=policy)
    assert np.array_equal(world.frame, frames[1])
    _, end = replay_world(seed, frames, 2, to_end=True, policy=policy)  # checks every frame
    assert np.array_equal(end.frame, frames[-1])
    with pytest.raises(RuntimeError, match=r"seq-5: the pushing world's frame \d differs .*policy 'scripted'"):
        replay_world(seed, frames, 2, to_end=True, name="seq-5")


def test_an_unknown_policy_is_refused_with_the_choices(tmp_path, capsys):
    with pytest.raises(ValueError, match=f"unknown policy 'teleport'; {CHOICES}"):
        rollout(1, 4, policy="teleport")
    with pytest.raises(ValueError, match=CHOICES):
        start_world(1, rollout(1, 2).frames, 2, policy="teleport")
    with pytest.raises(ValueError, match=CHOICES):
        write_packed(tmp_path / "p", {"test": 1}, workers=1, progress=False, length=4, policy="teleport")
    out = tmp_path / "synth"
    assert cli_main(["data", "synth", "--out", str(out), "--policy", "teleport", "--no-progress"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"bair-world data synth: error: unknown policy 'teleport'; {CHOICES}"]
    assert not out.exists() and not (tmp_path / "p").exists()


def test_the_policy_is_recorded_and_a_folder_is_not_mixed_across_policies(tmp_path):
    folder = write_dataset(tmp_path / "f", {"test": 1}, workers=1, progress=False, length=4, policy="random").root
    packed = write_packed(tmp_path / "p", {"test": 1}, workers=1, progress=False, length=4, policy="push").root
    assert json.loads((folder / "manifest.json").read_text())["policy"] == "random"
    assert recorded_policy(folder) == "random" and recorded_policy(packed) == "push"
    with pytest.raises(ValueError, match="policy random, .*; refusing to mix in .*policy push"):
        write_dataset(folder, {"test": 1}, workers=1, progress=False, length=4, policy="push")
    old = tmp_path / "old"  # written before policies were recorded: scripted
    old.mkdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["policy"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert recorded_policy(old) == "scripted" and recorded_policy(tmp_path) == "scripted"  # no manifest
    manifest["policy"] = "teleport"
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="manifest.json.*unknown data policy 'teleport'"):
        recorded_policy(old)


def test_data_synth_mixed_starts_the_counterfactual_evaluation_and_the_envs(tmp_path, capsys):
    out = tmp_path / "mixed"
    argv = ["data", "synth", "--out", str(out), "--policy", "mixed", "--train", "0", "--validate", "0",
            "--test", "3", "--workers", "1", "--no-progress"]
    assert cli_main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["policy"] == "mixed"
    starts = cf.load_starts(out, "test", length=5)  # sequences: scripted, random, push (see above)
    assert starts.policy == "mixed"
    assert np.array_equal(starts.frames[1], rollout(starts.seed(1), 5, policy="random").frames)
    refs = FolderReferences(out, "test")
    ref, world, _ = env_start_world(refs, 2, 2)  # the push sequence, checked byte for byte
    assert refs.policy == "mixed" and np.array_equal(world.frame, ref.frames[1])
    report = cf.evaluate(make_tiny_checkpoint(tmp_path / "ckpt"), out, count=3, n_future=3, batch_size=3)
    assert report["protocol"]["starts"] == 3 and set(report["sources"]) == set(cf.DEFAULT_SOURCES)
    assert len(report["sources"]["random"]["model"]["psnr"]["per_step"]) == 3
