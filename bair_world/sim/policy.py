"""The policies that drive the pushing world, and the registry the data is made with.

Every policy acts once per decision (`act(ee, poses, radii)` -> a (4,) float64 action row); the
caller asks for a new row at even steps and holds it at odd ones (`held`, the data's rule). The
registry (`POLICIES`) names what a synthetic sequence is driven by; `make_policy(name, seed, rng,
cfg)` is a pure function of the name and the sequence's seed (and the world's generator, itself made
from the seed), so a sequence is replayed from (policy name, seed) alone:

- ``scripted`` (the default; every dataset before policies were recorded): `ScriptedPusher`;
- ``push``: `NearestPusher`, the counterfactual evaluation's ``push`` source;
- ``random``: `RandomActions`, the counterfactual evaluation's ``random`` source;
- ``sweep``: `Sweeper`, a straight sweep through the objects' area;
- ``mixed``: each sequence one of the first three, drawn from its seed (`MIXED_SHARES`: 50 % scripted,
  25 % push, 25 % random), so a model trains on the actions an agent sends too.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from bair_world.sim.config import GRIP_COLUMN, MAX_GRIP, SimConfig, Z_COLUMN, action_bounds

HOLD, LOWER, LIFT = 0, 1, 2  # values of the Z_COLUMN command


class ScriptedPusher:
    """A random pushing policy: pick an object, go behind it, lower, push through; sometimes wander.

    Call `act` once per decision (every second frame); the caller repeats the row for two steps.

    Args:
        rng: the sequence's random generator.
        cfg: world configuration (workspace, delta limit, push bias).
    """

    def __init__(self, rng: np.random.Generator, cfg: SimConfig):
        self.rng, self.cfg = rng, cfg
        self.goal: np.ndarray | None = None  # (2,) current waypoint
        self.push_end: np.ndarray | None = None  # (2,) end of the push once behind the object
        self.z_cmd = HOLD
        self.grip = 0.0
        self.prev = np.zeros(2)

    def _new_goal(self, ee: np.ndarray, poses: np.ndarray, radii: np.ndarray) -> None:
        rng, cfg = self.rng, self.cfg
        lo, hi = np.array([cfg.x_range[0], cfg.y_range[0]]), np.array([cfg.x_range[1], cfg.y_range[1]])
        if rng.random() < cfg.push_bias and len(poses):
            dist = np.linalg.norm(poses[:, :2] - ee[:2], axis=1)
            weights = np.exp(-dist / 0.12)  # prefer nearby objects: reachable within a 30-frame clip
            i = int(rng.choice(len(poses), p=weights / weights.sum()))
            centre = poses[i, :2]
            to_obj = centre - ee[:2]
            # Push roughly in the direction of travel, so the approach is short, with random spread.
            ang = np.arctan2(to_obj[1], to_obj[0]) + rng.normal(0.0, 0.7)
            direction = np.array([np.cos(ang), np.sin(ang)])
            behind = centre - direction * (radii[i] + cfg.gripper_radius + 0.015)
            self.goal = np.clip(behind, lo, hi)
            self.push_end = np.clip(centre + direction * rng.uniform(0.06, 0.16), lo, hi)
            self.z_cmd = LIFT if (rng.random() < 0.35 and ee[2] < cfg.contact_z) else HOLD
        else:
            self.goal = rng.uniform(lo, hi)
            self.push_end = None
            self.z_cmd = int(rng.choice([HOLD, LOWER, LIFT]))
        if rng.random() < 0.2:
            self.grip = float(rng.integers(0, MAX_GRIP + 1))

    def act(self, ee: np.ndarray, poses: np.ndarray, radii: np.ndarray) -> np.ndarray:
        """Next action row [dx, dy, grip, z command] for end-effector ee (3,) and object poses (N, 3)."""
        cfg, rng = self.cfg, self.rng
        if self.goal is None or np.linalg.norm(self.goal - ee[:2]) < 0.02:
            if self.push_end is not None and self.goal is not None:
                self.goal, self.push_end = self.push_end, None  # behind the object: push through
                self.z_cmd = LOWER
            else:
                self._new_goal(ee, poses, radii)
        z_cmd = self.z_cmd
        if self.push_end is not None and np.linalg.norm(self.goal - ee[:2]) < 0.06:
            z_cmd = LOWER  # close behind the object: go down to pushing height
        elif self.push_end is None and self.goal is not None and ee[2] > cfg.contact_z and self.z_cmd == HOLD:
            z_cmd = LOWER if rng.random() < 0.5 else HOLD
        step = self.goal - ee[:2]
        speed = rng.uniform(0.6, 1.0) * cfg.max_delta
        norm = np.linalg.norm(step)
        if norm > speed:
            step = step / norm * speed
        delta = 0.7 * step + 0.3 * self.prev + rng.normal(0.0, 0.004, 2)  # smooth, slightly noisy
        delta = np.clip(delta, -cfg.max_delta, cfg.max_delta)
        self.prev = delta
        action = np.zeros(4)
        action[:2] = delta
        action[GRIP_COLUMN] = self.grip
        action[Z_COLUMN] = z_cmd
        return action


class NearestPusher:
    """A scripted push through the nearest objects, one after another (the counterfactual `push` source).

    Deterministic: go to the point just behind the nearest object not pushed yet (on the line from
    the gripper through its centre), push ``through`` metres past its centre along that line, then
    take the next nearest. The gripper is commanded low throughout, so whatever it meets is pushed.
    Positions come from the world as it executes the actions (call `act` with the current state).

    Args:
        cfg: world configuration (workspace, delta limit, gripper radius).
        through: how far past the object's centre each push goes (metres).
        patience: decisions a phase may take before the pusher gives up on it and moves on.
    """

    def __init__(self, cfg: SimConfig, through: float = 0.12, patience: int = 10):
        self.cfg, self.through, self.patience = cfg, through, patience
        self.goal: np.ndarray | None = None  # (2,) current waypoint
        self.end: np.ndarray | None = None  # (2,) end of the push, None once pushing
        self.target, self.pushed, self.age = -1, set(), 0

    def _plan(self, ee: np.ndarray, poses: np.ndarray, radii: np.ndarray) -> None:
        cfg = self.cfg
        if len(self.pushed) >= len(poses):
            self.pushed.clear()
        dist = np.linalg.norm(poses[:, :2] - ee[:2], axis=1)
        dist[list(self.pushed)] = np.inf
        self.target = int(np.argmin(dist))
        centre = poses[self.target, :2]
        to_obj = centre - ee[:2]
        direction = to_obj / max(float(np.linalg.norm(to_obj)), 1e-6)
        lo, hi = np.array([cfg.x_range[0], cfg.y_range[0]]), np.array([cfg.x_range[1], cfg.y_range[1]])
        self.goal = np.clip(centre - direction * (radii[self.target] + cfg.gripper_radius + 0.01), lo, hi)
        self.end = np.clip(centre + direction * self.through, lo, hi)
        self.age = 0

    def act(self, ee: np.ndarray, poses: np.ndarray, radii: np.ndarray) -> np.ndarray:
        """Next action row [dx, dy, grip 0, lower] for end-effector ee (3,) and object poses (N, 3)."""
        self.age += 1
        if self.goal is None:
            self._plan(ee, poses, radii)
        elif np.linalg.norm(self.goal - ee[:2]) < 0.015 or self.age > self.patience:
            if self.end is not None:  # behind the object: push through
                self.goal, self.end, self.age = self.end, None, 0
            else:  # push done: the next object
                self.pushed.add(self.target)
                self._plan(ee, poses, radii)
        action = np.zeros(4)
        action[:2] = np.clip(self.goal - ee[:2], -self.cfg.max_delta, self.cfg.max_delta)
        action[Z_COLUMN] = LOWER
        return action


class RandomActions:
    """Uniform random actions over the executable box (`bair_world.sim.action_bounds`): dx, dy uniform,
    grip and height command uniform whole numbers; the world's state is not looked at.

    Args:
        rng: the generator the rows are drawn from.
        cfg: world configuration (the box).
    """

    def __init__(self, rng: np.random.Generator, cfg: SimConfig):
        self.rng = rng
        self.low, self.high = action_bounds(cfg)

    def act(self, ee: np.ndarray, poses: np.ndarray, radii: np.ndarray) -> np.ndarray:
        """Next action row [dx, dy, grip, z command] (float64 (4,)); the arguments are ignored."""
        action = self.rng.uniform(self.low, self.high)
        whole = [GRIP_COLUMN, Z_COLUMN]
        action[whole] = self.rng.integers(0, self.high[whole].astype(int) + 1)
        return action


class Sweeper:
    """A straight sweep across the table through the objects' area, back and forth.

    At the first decision a direction is drawn (a uniform angle) and the line through the objects'
    centroid in that direction is cut to the workspace; the gripper goes lifted to one end, then
    lowered sweeps to the other end and back, so whatever lies on the line is pushed aside.

    Args:
        rng: draws the direction.
        cfg: world configuration (workspace, delta limit).
    """

    def __init__(self, rng: np.random.Generator, cfg: SimConfig):
        self.rng, self.cfg = rng, cfg
        self.ends: tuple[np.ndarray, np.ndarray] | None = None  # the line's two ends (2,) each
        self.leg = 0  # 0: lifted to ends[0]; then lowered towards ends[leg % 2]

    def _line(self, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.cfg
        lo, hi = np.array([cfg.x_range[0], cfg.y_range[0]]), np.array([cfg.x_range[1], cfg.y_range[1]])
        centre = np.clip(poses[:, :2].mean(0), lo, hi) if len(poses) else (lo + hi) / 2
        angle = self.rng.uniform(0.0, np.pi)
        direction = np.array([np.cos(angle), np.sin(angle)])
        with np.errstate(divide="ignore"):  # an axis-parallel line leaves one axis unbounded
            bounds = np.sort(np.stack([(lo - centre) / direction, (hi - centre) / direction]), 0)  # (2, 2)
        s_min, s_max = bounds[0].max(), bounds[1].min()  # the line's stretch inside the box
        return centre + s_min * direction, centre + s_max * direction

    def act(self, ee: np.ndarray, poses: np.ndarray, radii: np.ndarray) -> np.ndarray:
        """Next action row [dx, dy, grip 0, lift or lower] for end-effector ee (3,) and object poses (N, 3)."""
        if self.ends is None:
            self.ends = self._line(poses)
        if np.linalg.norm(self.ends[self.leg % 2] - ee[:2]) < 0.015:
            self.leg += 1
        step = self.ends[self.leg % 2] - ee[:2]
        action = np.zeros(4)
        action[:2] = step * min(1.0, self.cfg.max_delta / max(float(np.abs(step).max()), 1e-9))  # on the line
        action[Z_COLUMN] = LIFT if self.leg == 0 else LOWER
        return action


def held(t: int, prev: np.ndarray, fresh: Callable[[], np.ndarray]) -> np.ndarray:
    """The data's rule: a new action row (``fresh()``) at even step t, ``prev`` held at odd t."""
    return fresh() if t % 2 == 0 else prev


#: The concrete policies by name: (rng, cfg) -> a policy with `act`.
_POLICIES = {"scripted": ScriptedPusher, "push": lambda rng, cfg: NearestPusher(cfg), "random": RandomActions,
              "sweep": Sweeper}
CONCRETE_POLICIES = tuple(_POLICIES)
"""The policies that act themselves (every one but ``mixed``, which picks one of them per sequence)."""
POLICIES = (*CONCRETE_POLICIES, "mixed")
DEFAULT_POLICY = "scripted"
#: What ``mixed`` draws each sequence's policy from: (policy, share); the shares sum to 1.
MIXED_SHARES = (("scripted", 0.5), ("push", 0.25), ("random", 0.25))
_MIXED_STREAM = 0x313D  # keeps the mixed draw apart from every other use of a sequence's seed


def check_policy(name: str) -> str:
    """``name`` if it is a policy of the registry; else a one-line ValueError listing the choices."""
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}")
    return name


def sequence_policy(name: str, seed: int) -> str:
    """The concrete policy (of `CONCRETE_POLICIES`) that drives sequence ``seed`` of data made with
    ``name``: ``name`` itself, or for ``mixed`` one drawn from the seed by `MIXED_SHARES`."""
    if check_policy(name) != "mixed":
        return name
    u = np.random.default_rng([_MIXED_STREAM, int(seed)]).random()
    shares = np.cumsum([share for _, share in MIXED_SHARES])
    return MIXED_SHARES[min(int(np.searchsorted(shares, u, side="right")), len(MIXED_SHARES) - 1)][0]


def make_policy(name: str, seed: int, rng: np.random.Generator, cfg: SimConfig):
    """The policy driving sequence ``seed`` of data made with policy ``name`` (`sequence_policy`).

    Args:
        name: a name of `POLICIES`.
        seed: the sequence's seed.
        rng: the generator of the sequence's world (`PushWorld.rng`), which the scripted, random and
            sweep policies draw from (the scripted data's rule since the first generator version).
        cfg: world configuration.
    """
    return _POLICIES[sequence_policy(name, seed)](rng, cfg)
