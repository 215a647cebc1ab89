"""Scripted random pushing: smooth actions biased toward objects, each row held for two steps."""

from __future__ import annotations

import numpy as np

from bair_world.sim.config import GRIP_COLUMN, MAX_GRIP, SimConfig, Z_COLUMN

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
