"""Issue 30: on-policy data: a policy's true-world episodes saved as BAIR-format sequences with their
seeds; they pass `data check`, and the true world restarted from a sequence's seed and driven by its
recorded actions reproduces its frames."""

from __future__ import annotations

import numpy as np
import pytest

from bair_world.cli import main as cli_main
from bair_world.data.bair_folder import read_sequence
from bair_world.data.poses import read_poses
from bair_world.data.synthetic import sequence_dir
from bair_world.envs.goal_eval import RandomPolicy
from bair_world.envs.onpolicy import EpisodeRecord, check_replay, collect_onpolicy, read_manifest, replay_sequence
from bair_world.push_goals import push_goals
from bair_world.envs.push_world_env import PushWorldGoalEnv
from bair_world.envs.references import SimReferences

REFS = SimReferences(size=40, length=10)


class ReplayReference:
    """Replays each env's reference actions (reaches a push goal early: the held-still tail)."""

    def __call__(self, envs, obs):
        return np.stack([e.unwrapped.reference.actions[e.unwrapped.n_past - 1 + e.unwrapped._steps] for e in envs])


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("onpolicy")
    goals = push_goals(2, REFS, start=0)
    envs = [PushWorldGoalEnv(references=REFS, task="push", push_goals=goals) for _ in range(2)]
    first = collect_onpolicy(envs, RandomPolicy(0), [0, 1], out, name="random")
    second = collect_onpolicy(envs[:1], ReplayReference(), [0], out, name="replay")
    return out, first + second


def test_sequences_pass_data_check_and_carry_their_seeds(written, capsys):
    out, records = written
    assert cli_main(["data", "check", str(out)]) == 0, capsys.readouterr()
    entries = read_manifest(out)["sequences"]["train"]
    assert [e["agent"] for e in entries] == ["random", "random", "replay"]
    goals = push_goals(2, REFS, start=0)
    assert [e["seed"] for e in entries] == [r.seed for r in records] == [REFS.seed(goals[i].index) for i in (0, 1, 0)]
    for number, record in enumerate(records):
        frames, actions, positions = read_sequence(sequence_dir(out, "train", number), None)
        assert frames.shape == (len(REFS[record.index]), 64, 64, 3) and np.isnan(read_poses(
            sequence_dir(out, "train", number))).any()
        assert (actions[-1] == 0).all()
    assert records[2].success and records[2].steps < len(frames) - records[2].n_past  # held still after success


def test_the_true_world_from_the_seed_and_recorded_actions_reproduces_the_frames(written):
    out, records = written
    assert check_replay(out) == 3
    frames, actions, _ = read_sequence(sequence_dir(out, "train", 1), None)
    poses = read_poses(sequence_dir(out, "train", 1))
    for t, world in replay_sequence(records[1], actions, len(frames)):
        np.testing.assert_array_equal(world.frame, frames[t])
        np.testing.assert_array_equal(world.pose_slots(), poses[t])
    # another seed does not reproduce them
    wrong = EpisodeRecord(records[1].seed + 1, records[1].policy, records[1].n_past, 0, 0, False)
    assert not all(np.array_equal(w.frame, frames[t]) for t, w in replay_sequence(wrong, actions, len(frames)))


def test_only_true_world_envs_are_collected(tmp_path):
    with pytest.raises(TypeError, match="PushWorldGoal-v0"):
        collect_onpolicy([object()], RandomPolicy(0), [0], tmp_path)
