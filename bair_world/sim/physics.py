"""2-D rigid-body tabletop (pymunk): objects with hidden mass/friction, pushed by a kinematic gripper.

The table is seen from above: pymunk's plane is the table's (x, y) plane in BAIR metres, with no
gravity. Table friction is the usual top-down trick: each object is tied to a static body by a pivot
joint and a gear joint whose maximum force is mu * m * g (sliding and spinning friction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymunk

from bair_world.sim.config import SimConfig

GRAVITY = 9.81
SHAPES = ("circle", "box", "polygon")


@dataclass
class ObjectSpec:
    """One movable object: its outline in its own frame, height and colour.

    Attributes:
        kind: "circle", "box" or "polygon".
        outline: (K, 2) convex outline in the body frame (metres); a 12-gon for circles.
        radius: characteristic radius (metres); the collision radius for circles.
        height: height above the table (metres).
        colour: RGB in 0..255.
        palette: index of its base colour in the world's palette (unique within a scene, so it names
            the object across frames and sequences: the pose slot of `bair_world.data.poses`).
    """

    kind: str
    outline: np.ndarray
    radius: float
    height: float
    colour: tuple[int, int, int]
    palette: int = -1


def sample_objects(rng: np.random.Generator, cfg: SimConfig, palette: np.ndarray) -> tuple[list[ObjectSpec], np.ndarray]:
    """Draw 3-6 objects of varied shapes and saturated colours and non-overlapping poses.

    Returns:
        (specs, poses) with poses (N, 3) = x, y, angle.
    """
    n = int(rng.integers(cfg.n_objects[0], cfg.n_objects[1] + 1))
    specs, poses = [], []
    colours = rng.permutation(len(palette))
    for i in range(n):
        kind = SHAPES[int(rng.integers(len(SHAPES)))]
        r = float(rng.uniform(*cfg.object_size))
        if kind == "circle":
            ang = np.linspace(0.0, 2 * np.pi, 12, endpoint=False)
            outline = np.stack([np.cos(ang), np.sin(ang)], 1) * r  # (12, 2)
        elif kind == "box":
            aspect = rng.uniform(0.5, 1.0)
            w, h = r * 1.6, r * 1.6 * aspect
            outline = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2 * 1.25
        else:
            k = int(rng.integers(3, 7))
            ang = np.sort(rng.uniform(0, 2 * np.pi / k, k) + np.arange(k) * 2 * np.pi / k)
            rad = r * rng.uniform(0.85, 1.15, k)
            outline = np.stack([np.cos(ang) * rad, np.sin(ang) * rad], 1)  # (k, 2)
        base = palette[colours[i % len(palette)]].astype(float)
        colour = tuple(int(c) for c in np.clip(base * rng.uniform(0.85, 1.1), 0, 255))
        specs.append(ObjectSpec(kind, outline, r, float(rng.uniform(*cfg.object_height)), colour,
                                int(colours[i % len(palette)])))
        for _ in range(200):  # rejection sampling of a free spot inside the reachable area
            xy = rng.uniform([cfg.x_range[0] + 0.05, cfg.y_range[0] + 0.03], [cfg.x_range[1] - 0.02, cfg.y_range[1] - 0.03])
            if all(np.hypot(*(xy - p[:2])) > r + s.radius * 1.3 + 0.02 for p, s in zip(poses, specs)):
                break
        poses.append(np.array([xy[0], xy[1], rng.uniform(0, 2 * np.pi)]))
    return specs, np.stack(poses)


class TablePhysics:
    """The pymunk space: bin walls, movable objects and the kinematic gripper.

    Args:
        cfg: world configuration.
        specs: the objects.
        poses: (N, 3) initial x, y, angle.
        mass: hidden per-sequence object mass (kg).
        friction: hidden per-sequence table friction coefficient.
    """

    def __init__(self, cfg: SimConfig, specs: list[ObjectSpec], poses: np.ndarray, mass: float, friction: float):
        self.cfg = cfg
        self.space = pymunk.Space()
        self.space.collision_slop = 1e-4  # metres: the default 0.1 is meant for pixel units
        self.space.iterations = 12
        static = self.space.static_body
        (x0, x1), (y0, y1) = cfg.table_x, cfg.table_y
        corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        for a, b in zip(corners, corners[1:] + corners[:1]):
            wall = pymunk.Segment(static, a, b, 0.01)
            wall.friction = 0.5
            self.space.add(wall)
        self.bodies: list[pymunk.Body] = []
        for spec, pose in zip(specs, poses):
            if spec.kind == "circle":
                moment = pymunk.moment_for_circle(mass, 0, spec.radius)
                body = pymunk.Body(mass, moment)
                shape = pymunk.Circle(body, spec.radius)
            else:
                verts = [tuple(v) for v in spec.outline]
                body = pymunk.Body(mass, pymunk.moment_for_poly(mass, verts))
                shape = pymunk.Poly(body, verts)
            body.position = (float(pose[0]), float(pose[1]))
            body.angle = float(pose[2])
            shape.friction = 0.6
            shape.elasticity = 0.0
            pivot = pymunk.PivotJoint(static, body, (0, 0), (0, 0))
            pivot.max_bias = 0.0  # no positional correction: pure velocity friction
            pivot.max_force = friction * mass * GRAVITY
            gear = pymunk.GearJoint(static, body, 0.0, 1.0)
            gear.max_bias = 0.0
            gear.max_force = friction * mass * GRAVITY * spec.radius
            self.space.add(body, shape, pivot, gear)
            self.bodies.append(body)
        self.gripper = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        self.gripper_shape = pymunk.Circle(self.gripper, cfg.gripper_radius)
        self.gripper_shape.friction = 0.4
        self.space.add(self.gripper)
        self._touching = False

    def object_poses(self) -> np.ndarray:
        """(N, 3) current x, y, angle of every object."""
        return np.array([(b.position.x, b.position.y, b.angle) for b in self.bodies])

    def state(self) -> tuple:
        """The dynamic state (object poses and velocities, gripper, contact flag) for `set_state`."""
        bodies = tuple((tuple(b.position), b.angle, tuple(b.velocity), b.angular_velocity) for b in self.bodies)
        return bodies, tuple(self.gripper.position), tuple(self.gripper.velocity), self._touching

    def set_state(self, state: tuple) -> None:
        """Put the space back into a `state` (much cheaper than a deep copy; the solver's cached
        contact impulses are not restored, so a replay may differ from the original by solver tolerance)."""
        bodies, grip_pos, grip_vel, touching = state
        for body, (pos, angle, vel, ang_vel) in zip(self.bodies, bodies):
            body.position, body.angle, body.velocity, body.angular_velocity = pos, angle, vel, ang_vel
        self.gripper.position, self.gripper.velocity = grip_pos, grip_vel
        if touching != self._touching:
            (self.space.add if touching else self.space.remove)(self.gripper_shape)
            self._touching = touching
        for body in (*self.bodies, self.gripper):
            self.space.reindex_shapes_for_body(body)

    def advance(self, start: np.ndarray, end: np.ndarray) -> None:
        """Run one frame of physics while the gripper moves in a straight line from start to end.

        The gripper's collision shape is in the space only during sub-steps in which its height is
        below `contact_z`, so a high gripper passes over objects without touching them.
        """
        n, dt = self.cfg.substeps, self.cfg.frame_dt / self.cfg.substeps
        velocity = (end[:2] - start[:2]) / self.cfg.frame_dt
        self.gripper.position = (float(start[0]), float(start[1]))
        self.gripper.velocity = (float(velocity[0]), float(velocity[1]))
        for i in range(n):
            z = start[2] + (end[2] - start[2]) * (i + 0.5) / n
            low = z < self.cfg.contact_z
            if low != self._touching:
                if low:
                    self.space.add(self.gripper_shape)
                else:
                    self.space.remove(self.gripper_shape)
                self._touching = low
            self.space.step(dt)
        self.gripper.position = (float(end[0]), float(end[1]))  # remove integration drift
        self.space.reindex_shapes_for_body(self.gripper)
