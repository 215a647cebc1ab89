"""The goal tasks as one registry (`TASKS`, `make_task`): a task says what the goals are, the reward,
success judged from the world's state, the planner's cost weights and the thresholds.

The goal envs (`bair_world.envs.goal_task.GoalEnvBase`: ``BairWorldGoal-v0``, ``PushWorldGoal-v0``)
hold one task object and ask it; nothing else tests a task's name. Success reads a `GoalState`: the
frame and the arm, plus the objects' poses where the world has them (the true pushing world); the
learned world has none, so a task judged on objects falls back to an image proxy there.

* ``"reach"`` (`ReachTask`): goal = a reference's last frame; success = image distance
  (`bair_world.metrics.goal_distance`) <= ``threshold``.
* ``"push"`` (`PushTask`): goal = a state in which one object moved >= 5 cm
  (`bair_world.push_goals`); success = that object's centre within ``tolerance`` metres of its goal
  centre; without poses, the weighted image distance (`weighted_distance`) <= ``threshold``.
* ``"push_any"`` (`PushAnyTask`): the pushing goals; success = any object moved at least the push
  goals' distance (`bair_world.push_goals.MIN_MOVE`) from where it started.

Every task's reward is ``-goal_distance`` to the goal frame (so HER can recompute it from frames).
A new task is a subclass overriding what differs and one entry in `TASKS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from bair_world.configtypes import is_number
from bair_world.data.batch import IMAGE_SIZE
from bair_world.metrics import goal_distance
from bair_world.push_goals import MIN_MOVE, PUSH_TOLERANCE, PushGoal, push_goals

#: Default success threshold on `bair_world.metrics.goal_distance` (RMSE of 16x16 area means in
#: [0, 1]). Measured on the built-in references: the frame one step before the goal lies at
#: 0.01-0.06 from it, the start at 0.05-0.09, 28 random actions end at 0.05-0.10.
SUCCESS_THRESHOLD = 0.025
#: Success threshold of the pushing tasks in the learned world, which has no object state: the
#: weighted image distance (`weighted_distance`) to the goal. An image proxy; the benchmark judges
#: pushing in the true world (``PushWorldGoal-v0``).
PUSH_IMAGE_THRESHOLD = 0.06
#: Number of pushing goals a pushing task draws from (`bair_world.push_goals.push_goals`' first ones).
NUM_PUSH_GOALS = 64
#: Pooling of `weighted_distance` (2x2 area means: tolerant of one-pixel shifts and blur, fine
#: enough for 3-5 pixel objects).
WEIGHT_POOL = 2


def weighted_distance(frames: np.ndarray, goals: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted RMSE of 2x2 area-averaged frames in [0, 1].

    Args:
        frames: uint8 (..., 64, 64, 3); goals: uint8 broadcastable; weights: (..., 64, 64) broadcastable.

    Returns:
        float64 (...).
    """
    n = IMAGE_SIZE // WEIGHT_POOL

    def pooled(x, channels=True):
        x = np.asarray(x, np.float32)
        tail = (3,) if channels else ()
        lead = x.shape[:-3] if channels else x.shape[:-2]
        # (..., 64, 64[, 3]) -> (..., 32, 2, 32, 2[, 3]) -> mean over the 2x2 blocks
        return x.reshape(*lead, n, WEIGHT_POOL, n, WEIGHT_POOL, *tail).mean(axis=(-3, -1) if not channels else (-4, -2))

    sq = ((pooled(frames) - pooled(goals)) / 255.0) ** 2  # (..., 32, 32, 3)
    w = pooled(weights, channels=False)  # (..., 32, 32)
    w = w / w.sum(axis=(-2, -1), keepdims=True)
    return np.sqrt((sq.mean(-1) * w).sum(axis=(-2, -1), dtype=np.float64))


def goal_cost(frames: np.ndarray, goals: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The image cost of frames against goals: `goal_distance`, or `weighted_distance` with a cost mask."""
    return goal_distance(frames, goals) if weights is None else weighted_distance(frames, goals, weights)


def objects_mean_distance(poses: np.ndarray, goal_poses: np.ndarray) -> float:
    """Mean distance (metres) between every object's centre in ``poses`` and in ``goal_poses`` ((N, 3) each)."""
    return float(np.linalg.norm(poses[:, :2] - goal_poses[:, :2], axis=1).mean())


def checked(name: str, value, above: bool = False) -> float:
    """``value`` as a finite float >= 0 (> 0 with ``above``); TypeError (not a number) or ValueError naming ``name``."""
    if not is_number(value):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    if not np.isfinite(value) or value < 0 or (above and value == 0):
        raise ValueError(f"{name} must be a finite number {'>' if above else '>='} 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class GoalState:
    """The world's state at one step, what success is judged from."""

    frame: np.ndarray
    """uint8 (64, 64, 3) the current image."""
    position: np.ndarray
    """(3,) the end-effector position (metres)."""
    poses: np.ndarray | None = None
    """(N, 3) the objects' poses; None where the world has no object state (the learned world)."""


@dataclass(frozen=True)
class ReachGoal:
    """A reaching goal: reference ``index``'s last frame and state."""

    index: int
    """The reference the episode starts from."""
    goal_frame: np.ndarray
    """uint8 (64, 64, 3) the goal image."""
    goal_position: np.ndarray
    """(3,) the end-effector position in the goal state."""
    goal_poses: np.ndarray | None = None
    """(N, 3) the objects' poses in the goal state (the true world fills them in)."""
    weights: np.ndarray | None = None
    """The planner's cost mask: none (the plain `goal_distance`)."""


class GoalTask:
    """A goal task (the base is the common part; see the module docstring).

    Args:
        threshold: success threshold on the task's image distance (`image_distance`); default
            ``default_threshold``.
        tolerance: success radius in metres of the tasks judged on object poses; default
            `bair_world.push_goals.PUSH_TOLERANCE`.
    """

    name: ClassVar[str]
    default_threshold: ClassVar[float] = SUCCESS_THRESHOLD

    def __init__(self, threshold: float | None = None, tolerance: float | None = None):
        self.threshold = checked("success_threshold", self.default_threshold if threshold is None else threshold)
        self.tolerance = checked("push_tolerance", PUSH_TOLERANCE if tolerance is None else tolerance, above=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threshold={self.threshold}, tolerance={self.tolerance})"

    # -- goals ---------------------------------------------------------------------------------
    def prepare(self, references, n_past: int, goals=None, num_goals: int = NUM_PUSH_GOALS) -> None:
        """Make the goal pool of ``references`` (episodes start at frame ``n_past - 1``)."""

    def count(self, num_references: int) -> int:
        """How many goals ``reset``'s ``options["index"]`` ranges over."""
        return num_references

    def reference_index(self, i: int) -> int:
        """The reference goal ``i``'s episode starts from."""
        return i

    def goal(self, i: int, reference):
        """Goal ``i``, whose episode replays ``reference`` (`bair_world.references.Reference`)."""
        return ReachGoal(i, reference.frames[-1], reference.positions[-1].astype(np.float64))

    # -- judging -------------------------------------------------------------------------------
    def reward(self, frames, goal_frames) -> np.ndarray:
        """Rewards (...) of frames uint8 (..., 64, 64, 3) against goal frames: ``-goal_distance``."""
        return -goal_distance(frames, goal_frames)

    def image_distance(self, frame: np.ndarray, goal) -> float:
        """The image distance ``threshold`` applies to (the planner's pixel cost of this goal)."""
        return float(goal_cost(frame, goal.goal_frame, goal.weights))

    def success(self, state: GoalState, goal) -> bool:
        return self.image_distance(state.frame, goal) <= self.threshold

    def terminated(self, achieved, desired, infos) -> np.ndarray:
        """HER's batched termination (...) of achieved and desired frames (..., 64, 64, 3)."""
        return -self.reward(achieved, desired) <= self.threshold

    def info(self, state: GoalState, goal) -> dict[str, Any]:
        """The task's entries of a step's info (besides the goal envs' common ones)."""
        if state.poses is None or goal.goal_poses is None:
            return {}
        return {"object_distance_m": objects_mean_distance(state.poses, goal.goal_poses)}


class ReachTask(GoalTask):
    name = "reach"


class PushTask(GoalTask):
    """Push the goal's object to where it ended in the goal state (`PushGoal`)."""

    name = "push"
    default_threshold = PUSH_IMAGE_THRESHOLD

    def __init__(self, threshold: float | None = None, tolerance: float | None = None):
        super().__init__(threshold, tolerance)
        self.goals: list[PushGoal] | None = None

    def prepare(self, references, n_past: int, goals=None, num_goals: int = NUM_PUSH_GOALS) -> None:
        """Take ``goals`` (`PushGoal`s) or, unless prepared before, find the first ``num_goals`` in ``references``.

        Raises:
            TypeError: ``references`` is not the built-in pool (goals are found by replaying it).
            ValueError: no goal.
        """
        from bair_world.references import SimReferences

        if goals is not None:
            self.goals = list(goals)
        elif self.goals is None:
            if not isinstance(references, SimReferences):
                raise TypeError(f"task {self.name!r} needs the built-in references (SimReferences), got {references!r}")
            self.goals = push_goals(num_goals, references, n_past=n_past)
        if not self.goals:
            raise ValueError(f"task {self.name!r} needs at least one goal")

    def count(self, num_references: int) -> int:
        return len(self.goals)

    def reference_index(self, i: int) -> int:
        return self.goals[i].index

    def goal(self, i: int, reference) -> PushGoal:
        return self.goals[i]

    def terminated(self, achieved, desired, infos) -> np.ndarray:
        """The infos' ``is_success`` (all False without infos): success is not a function of the frames."""
        shape = np.shape(achieved)[:-3]
        infos = None if infos is None else np.atleast_1d(np.asarray(infos, dtype=object))
        if infos is None or infos.size != int(np.prod(shape)):
            return np.zeros(shape, bool)
        return np.array([bool(i["is_success"]) for i in infos.ravel()]).reshape(shape)

    def success(self, state: GoalState, goal: PushGoal) -> bool:
        if state.poses is None:
            return super().success(state, goal)
        return goal.object_error(state.poses) <= self.tolerance

    def info(self, state: GoalState, goal: PushGoal) -> dict[str, Any]:
        info = {"weighted_distance": self.image_distance(state.frame, goal)}
        if state.poses is not None:
            info.update(object_distance_m=goal.object_error(state.poses),
                        objects_mean_distance_m=objects_mean_distance(state.poses, goal.goal_poses))
        return info


class PushAnyTask(PushTask):
    """Push any object at least as far as the pushing goals' object moved (`MIN_MOVE`) from its start.

    The goals (and so the goal image, the reward and the learned world's image proxy) are the
    pushing goals: the goal image shows one way to succeed. ``info`` adds ``moved_m``, the farthest
    any object has moved from its start (true world).
    """

    name = "push_any"

    def success(self, state: GoalState, goal: PushGoal) -> bool:
        return super().success(state, goal) if state.poses is None else self.moved(state, goal) >= MIN_MOVE

    def info(self, state: GoalState, goal: PushGoal) -> dict[str, Any]:
        return super().info(state, goal) | ({} if state.poses is None else {"moved_m": self.moved(state, goal)})

    @staticmethod
    def moved(state: GoalState, goal: PushGoal) -> float:
        """How far (metres) the object that moved most lies from its start (``goal.start_poses``)."""
        return float(np.linalg.norm(state.poses[:, :2] - goal.start_poses[:, :2], axis=1).max())


#: The goal tasks by name (every user of a task name reads this).
TASKS: dict[str, type[GoalTask]] = {task.name: task for task in (ReachTask, PushTask, PushAnyTask)}


def make_task(task: str | GoalTask = "reach", threshold: float | None = None,
              tolerance: float | None = None) -> GoalTask:
    """The task named ``task`` (one of `TASKS`) with these thresholds, or ``task`` itself if it is one.

    Raises:
        ValueError: an unknown name (the known ones are named), or thresholds given with a task object.
    """
    if isinstance(task, GoalTask):
        if threshold is not None or tolerance is not None:
            raise ValueError(f"give the thresholds to the task object {task!r}, not beside it")
        return task
    if task not in TASKS:
        raise ValueError(f"unknown goal task {task!r}; known: {', '.join(TASKS)}")
    return TASKS[task](threshold, tolerance)
