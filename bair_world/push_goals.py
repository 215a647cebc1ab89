"""Pushing goals: a start state and a goal state in which one named object has moved >= 5 cm.

Goals come from the built-in pushing world's reference rollouts (`SimReferences`): rollout ``index``
is replayed exactly (`bair_world.sim.sequence_worlds`); the start is its frame ``n_past - 1`` (where
the goal envs start), the goal state its first frame in which some object's centre lies at least
``min_move`` metres from its start; that object (the one that moved most) is the goal's object and
its centre then the goal position. The episode still lasts the whole reference (28 steps), more
than the scripted pusher needed. Success is judged on the true world's state
(`PushGoal.object_error`), not on images.

Every goal also carries the planner's cost mask (`goal_weights`): where its start and goal frames
differ, with the arm's pixels (from the world's region labels) discounted. The tasks that use these
goals ("push", "push_any") are in `bair_world.goal_tasks`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bair_world.references import SimReferences
from bair_world.sim import SimConfig, sequence_worlds

#: An object must have moved this far (metres) between start and goal.
MIN_MOVE = 0.05
#: Success: the goal's object centre within this distance (metres) of its goal centre (picked on
#: the oracle planner, see the README's pushing table).
PUSH_TOLERANCE = 0.025
#: First reference index scanned for pushing goals (away from the reaching table's 0-15).
PUSH_GOAL_START = 2000


def goal_weights(start: np.ndarray, goal: np.ndarray, arm: np.ndarray | None = None, *, threshold: float = 0.08,
                 arm_weight: float = 0.1, dilate: int = 1) -> np.ndarray:
    """The cost mask of a goal: 1 where start and goal frames differ, ``arm_weight`` on the arm's pixels.

    Args:
        start, goal: uint8 (64, 64, 3) the start and goal frames.
        arm: bool (64, 64) pixels of the arm in either frame (None: no discount).
        threshold: a pixel differs when a channel changed by more than this (in [0, 1]).
        arm_weight: weight of differing pixels that are the arm's (its motion is not the goal).
        dilate: grow the mask by this many pixels (where the object's edge will be).

    Returns:
        float32 (64, 64), summing to 1 (uniform if the frames do not differ).
    """
    diff = np.abs(start.astype(np.int16) - goal.astype(np.int16)).max(-1) > threshold * 255  # (64, 64)
    for _ in range(dilate):  # 3x3 max filter
        grown = diff.copy()
        grown[1:] |= diff[:-1]
        grown[:-1] |= diff[1:]
        grown[:, 1:] |= diff[:, :-1]
        grown[:, :-1] |= diff[:, 1:]
        diff = grown
    w = diff.astype(np.float32)
    if arm is not None:
        w = np.where(arm, w * arm_weight, w)
    if w.sum() <= 0:
        w = np.ones_like(w)
    return (w / w.sum()).astype(np.float32)


@dataclass(frozen=True)
class PushGoal:
    """One pushing goal.

    Attributes:
        index: reference index (`SimReferences`) whose rollout defines start and goal.
        obj: index of the goal's object in the world's object list.
        frame: the reference frame that is the goal state.
        start_poses: (N, 3) every object's pose at the start (frame ``n_past - 1``).
        goal_xy: (2,) its centre in the goal state (metres).
        goal_poses: (N, 3) every object's pose in the goal state.
        goal_position: (3,) the end-effector position in the goal state.
        goal_frame: uint8 (64, 64, 3) the goal image (reference frame ``frame``).
        weights: float32 (64, 64) the planner's cost mask (see `goal_weights`).
    """

    index: int
    obj: int
    frame: int
    start_poses: np.ndarray
    goal_xy: np.ndarray
    goal_poses: np.ndarray
    goal_position: np.ndarray
    goal_frame: np.ndarray
    weights: np.ndarray

    @property
    def start_xy(self) -> np.ndarray:
        """(2,) the goal object's centre at the start (metres)."""
        return self.start_poses[self.obj, :2]

    @property
    def move(self) -> float:
        """How far (metres) the object moved from start to goal."""
        return float(np.linalg.norm(self.goal_xy - self.start_xy))

    def object_error(self, object_poses: np.ndarray) -> float:
        """Distance (metres) of the goal's object from its goal centre, given (N, 3) poses of a world state."""
        return float(np.linalg.norm(np.asarray(object_poses)[self.obj, :2] - self.goal_xy))


def push_goal_of(seed: int, index: int, n_past: int = 2, length: int = 30, min_move: float = MIN_MOVE,
                 config: SimConfig = SimConfig()) -> PushGoal | None:
    """The pushing goal of rollout ``seed`` (reference ``index``), or None if no object ever moved ``min_move``.

    The goal state is the FIRST frame at which some object's centre lies ``min_move`` or more from
    where it was at the start (frame ``n_past - 1``): a push of 5-11 cm (the gripper moves at most
    6 cm a frame) that the scripted pusher did in fewer steps than the episode has.
    """
    start_frame = start_poses = start_labels = None
    for t, world, _ in sequence_worlds(seed, length, config):
        if t == n_past - 1:
            start_frame, start_poses, start_labels = world.frame.copy(), world.object_poses, world.labels()
        elif t >= n_past:
            poses = world.object_poses
            moved = np.linalg.norm(poses[:, :2] - start_poses[:, :2], axis=1)  # (N,) metres
            if moved.max() >= min_move:
                obj = int(np.argmax(moved))
                weights = goal_weights(start_frame, world.frame, (start_labels == 1) | (world.labels() == 1))
                return PushGoal(int(index), obj, t, start_poses, poses[obj, :2].copy(), poses,
                                world.position, world.frame.copy(), weights)
    return None


def push_goals(count: int, references=None, start: int = PUSH_GOAL_START, n_past: int = 2,
               min_move: float = MIN_MOVE, config: SimConfig = SimConfig()) -> list[PushGoal]:
    """The first ``count`` pushing goals among references ``start, start + 1, ...``.

    Args:
        count: goals wanted.
        references: the `SimReferences` pool (None: the default built-in pool); only its seed
            offset and length are read.
        start: first reference index scanned.
        n_past: the goal envs' context frames (the start is frame ``n_past - 1``).
        min_move: an object must have moved at least this far (metres).

    Raises:
        ValueError: the pool ran out before ``count`` goals were found.
    """
    references = SimReferences() if references is None else references
    goals: list[PushGoal] = []
    index = start
    while len(goals) < count:
        if index >= len(references):
            raise ValueError(f"only {len(goals)} pushing goals (>= {min_move} m) in references {start}..{index - 1} "
                             f"of {references!r}; {count} asked for")
        goal = push_goal_of(references.seed_offset + index, index, n_past, references.length, min_move, config)
        if goal is not None:
            goals.append(goal)
        index += 1
    return goals
