"""The goal-task registry (`bair_world.goal_tasks`): names, goals, reward and success on hand-made states."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import FakeReferences
from bair_world.goal_tasks import (PUSH_IMAGE_THRESHOLD, SUCCESS_THRESHOLD, TASKS, GoalState, GoalTask, PushTask,
                                   ReachGoal, make_task)
from bair_world.metrics import goal_distance
from bair_world.push_goals import MIN_MOVE, PushGoal, push_goals

FRAME = np.zeros((64, 64, 3), np.uint8)


def push_goal(start_poses, obj=0, goal_xy=(0.60, 0.0)) -> PushGoal:
    """A hand-made pushing goal: object ``obj`` from its start pose to ``goal_xy``, a white goal frame."""
    start = np.asarray(start_poses, np.float64)
    goal_poses = start.copy()
    goal_poses[obj, :2] = goal_xy
    weights = np.full((64, 64), 1 / 64**2, np.float32)
    return PushGoal(7, obj, 5, start, np.asarray(goal_xy), goal_poses, np.zeros(3), np.full_like(FRAME, 255), weights)


def state(poses=None, value=0) -> GoalState:
    return GoalState(np.full_like(FRAME, value), np.zeros(3), None if poses is None else np.asarray(poses, np.float64))


def test_every_name_makes_its_task_and_an_unknown_name_is_refused_naming_the_known():
    for name, cls in TASKS.items():
        task = make_task(name)
        assert type(task) is cls and task.name == name
    with pytest.raises(ValueError, match="unknown goal task 'teleport'; known: reach, push, push_any"):
        make_task("teleport")
    task = make_task("push", threshold=0.1, tolerance=0.01)
    assert (task.threshold, task.tolerance) == (0.1, 0.01) and make_task(task) is task
    assert make_task("reach").threshold == SUCCESS_THRESHOLD and make_task("push").threshold == PUSH_IMAGE_THRESHOLD
    with pytest.raises(ValueError, match="not beside it"):
        make_task(task, threshold=0.2)


@pytest.mark.parametrize("kw, error, match", [({"threshold": -1}, ValueError, "success_threshold"),
                                               ({"threshold": float("nan")}, ValueError, "success_threshold"),
                                               ({"tolerance": 0.0}, ValueError, "push_tolerance"),
                                               ({"threshold": "0.1"}, TypeError, "success_threshold"),
                                               ({"tolerance": True}, TypeError, "push_tolerance")])
def test_bad_thresholds_are_refused_naming_the_option(kw, error, match):
    with pytest.raises(error, match=match):
        make_task("push", **kw)


def test_reach_goal_is_the_references_last_frame_and_success_is_the_image_distance():
    task, ref = make_task("reach"), FakeReferences(length=6)[2]
    assert task.count(5) == 5 and task.reference_index(3) == 3
    goal = task.goal(2, ref)
    assert isinstance(goal, ReachGoal) and goal.index == 2 and goal.weights is None and goal.goal_poses is None
    np.testing.assert_array_equal(goal.goal_frame, ref.frames[-1])
    np.testing.assert_array_equal(goal.goal_position, ref.positions[-1])
    at_goal = GoalState(ref.frames[-1], np.zeros(3))
    assert task.success(at_goal, goal) and not task.success(GoalState(255 - ref.frames[-1], np.zeros(3)), goal)
    assert task.reward(ref.frames[0], goal.goal_frame) == -goal_distance(ref.frames[0], goal.goal_frame)
    # the true world adds the objects' mean distance to the goal state
    poses, goal = np.zeros((2, 3)), ReachGoal(0, FRAME, np.zeros(3), goal_poses=np.array([[0.03, 0.04, 0], [0, 0, 0]]))
    assert task.info(GoalState(FRAME, np.zeros(3), poses), goal) == {"object_distance_m": pytest.approx(0.025)}
    assert task.info(GoalState(FRAME, np.zeros(3)), goal) == {}


def test_push_success_reads_the_goal_objects_pose_or_the_weighted_image_without_poses():
    task, goal = make_task("push"), push_goal([[0.5, 0.0, 0.0], [0.7, 0.1, 0.0]])
    task.prepare(None, 2, goals=[goal])
    assert task.count(100) == 1 and task.reference_index(0) == 7 and task.goal(0, None) is goal
    assert not task.success(state([[0.5, 0.0, 0], [0.7, 0.1, 0]]), goal)
    assert task.success(state([[0.59, 0.0, 0], [0.2, 0.1, 0]]), goal)  # within 2.5 cm; the other object is free
    assert not task.success(state([[0.5, 0.0, 0], [0.60, 0.0, 0]]), goal)  # the wrong object at the goal
    info = task.info(state([[0.59, 0.0, 0], [0.7, 0.1, 0]]), goal)
    assert info["object_distance_m"] == pytest.approx(0.01) and info["objects_mean_distance_m"] == pytest.approx(0.005)
    # the learned world has no poses: the goal image (white) is the proxy
    assert task.success(state(value=255), goal) and not task.success(state(value=0), goal)
    assert set(task.info(state(value=0), goal)) == {"weighted_distance"}


def test_push_termination_for_her_reads_the_infos():
    task, frames = make_task("push"), np.zeros((2, 3, 64, 64, 3), np.uint8)
    infos = np.array([[{"is_success": s} for s in row] for row in ([True, False, False], [False, False, True])])
    assert task.terminated(frames, frames, infos).tolist() == [[True, False, False], [False, False, True]]
    assert not task.terminated(frames, frames, None).any()  # no infos: not judged


def test_push_goals_need_the_built_in_references():
    with pytest.raises(TypeError, match="SimReferences"):
        make_task("push").prepare(FakeReferences(), 2)
    with pytest.raises(ValueError, match="at least one goal"):
        make_task("push").prepare(None, 2, goals=[])


def test_the_goal_env_asks_its_task_object():
    from bair_world.envs.push_world_env import PushWorldGoalEnv
    from bair_world.envs.references import SimReferences

    class Always(GoalTask):
        """Success whatever the state (a user's own task, not registered)."""

        name = "always"

        def success(self, state, goal):
            return True

    env = PushWorldGoalEnv(references=SimReferences(size=2, length=6), task=Always())
    _, info = env.reset(seed=0)
    *_, terminated, truncated, info = env.step(np.zeros(4))
    assert type(env.task) is Always and terminated and info["is_success"] and not truncated


def test_push_any_succeeds_when_any_object_moved_the_push_distance():
    task, goal = make_task("push_any"), push_goal([[0.5, 0.0, 0.0], [0.7, 0.1, 0.0]])
    task.prepare(None, 2, goals=[goal])
    assert task.goal(0, None) is goal and task.reward(FRAME, goal.goal_frame) == make_task("push").reward(
        FRAME, goal.goal_frame)
    assert not task.success(state([[0.5, 0.0, 0], [0.7, 0.1, 0]]), goal)  # nothing moved
    assert task.success(state([[0.5, 0.0, 0], [0.7, 0.1 + 1.1 * MIN_MOVE, 0]]), goal)  # the other object
    assert task.success(state([[0.5 - 1.1 * MIN_MOVE, 0.0, 0], [0.7, 0.1, 0]]), goal)  # the goal's object, away from its goal
    assert not task.success(state([[0.5, 0.049, 0], [0.7, 0.149, 0]]), goal)  # both short of 5 cm
    info = task.info(state([[0.5, 0.0, 0], [0.7, 0.13, 0]]), goal)
    assert info["moved_m"] == pytest.approx(0.03) and "object_distance_m" in info
    # no poses (the learned world): the pushing goals' image proxy
    assert task.success(state(value=255), goal) and not task.success(state(value=0), goal)


def test_push_any_in_the_true_world_ends_at_the_first_frame_an_object_moved_the_push_distance():
    from bair_world.envs.push_world_env import PushWorldGoalEnv
    from bair_world.envs.references import SimReferences

    refs = SimReferences(size=40, length=12)
    goal = push_goals(1, refs, start=0)[0]
    env = PushWorldGoalEnv(references=refs, task="push_any", push_goals=[goal])
    _, info = env.reset(seed=0, options={"index": 0})
    assert not info["is_success"] and info["moved_m"] == 0.0
    for t in range(1, goal.frame):  # the reference's own actions: frame t + 1 after step t
        *_, terminated, _, info = env.step(env.reference.actions[t])
        assert terminated == (t + 1 == goal.frame) == info["is_success"]
    assert info["moved_m"] >= MIN_MOVE
