"""The pushing world: physics + renderer + controller behind a reset/step API in BAIR units."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bair_world.sim.flow import PoseState, true_flow
from bair_world.sim.config import GRIP_COLUMN, MAX_GRIP, MAX_Z_COMMAND, SimConfig, Z_COLUMN
from bair_world.sim.physics import TablePhysics, sample_objects
from bair_world.sim.policy import DEFAULT_POLICY, held, make_policy
from bair_world.sim.render import Renderer

# Saturated toy colours (RGB), jittered per object.
PALETTE = np.array([
    [235, 150, 20], [60, 190, 60], [230, 210, 30], [210, 40, 40], [40, 90, 210],
    [150, 60, 170], [30, 170, 190], [240, 240, 235], [240, 110, 160],
], float)


class PushWorld:
    """A BAIR-like tabletop: a gripper pushes 3-6 objects; frames are 64x64 RGB like BAIR's camera.

    `step(action, position)` semantics (BAIR units, metres):

    * `position` (3,) is the end-effector position the action is relative to (normally
      `world.position`, the recorded position at this frame); it is clipped to the workspace.
    * `action[0:2]` = (dx, dy), clipped to +-`max_delta`: the xy target is `position[:2] + (dx, dy)`.
    * `action[2]` = gripper closure 0 (open) .. 4 (closed), rounded and clipped; it changes the finger
      gap in the image only.
    * `action[3]` = height command, rounded and clipped to 0..2: 0 holds `position[2]`, 1 lowers to
      `z_low` (pushing height), 2 lifts to `z_high`.
    * During the frame the gripper moves from its actual position toward the target by `track_gain`
      of the remaining distance, at most `max_speed * frame_dt` horizontally and `z_speed * frame_dt`
      vertically, while physics runs `substeps` sub-steps; objects are pushed only while the gripper
      is below `contact_z`. The new actual position becomes `world.position`.

    Args:
        seed: fixes everything: layout, shapes, colours, hidden mass/friction, camera, lighting.
        config: world configuration.
    """

    def __init__(self, seed: int, config: SimConfig = SimConfig()):
        self.config = config
        self.seed = int(seed)
        self.reset()

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Rebuild the scene from `seed` (default: the constructor's) and return the first frame."""
        if seed is not None:
            self.seed = int(seed)
        cfg = self.config
        self.rng = np.random.default_rng(self.seed)
        specs, poses = sample_objects(self.rng, cfg, PALETTE)
        self.mass = float(np.exp(self.rng.uniform(np.log(cfg.mass[0]), np.log(cfg.mass[1]))))
        self.friction = float(self.rng.uniform(*cfg.friction))
        self.specs = specs
        self.radii = np.array([s.radius for s in specs])
        self.physics = TablePhysics(cfg, specs, poses, self.mass, self.friction)
        self.renderer = Renderer(self.rng, cfg, specs)
        self._position = self.rng.uniform(*position_bounds(cfg))
        self.physics.gripper.position = tuple(self._position[:2])
        self.grip = 0.0
        self.frame = self.renderer.draw(self.physics.object_poses(), self._position, self.grip)
        return self.frame

    @property
    def position(self) -> np.ndarray:
        """Current end-effector position (3,), BAIR metres."""
        return self._position.copy()

    @property
    def object_poses(self) -> np.ndarray:
        """(N, 3) object x, y (metres) and angle (radians)."""
        return self.physics.object_poses()

    def object_pixels(self) -> np.ndarray:
        """(N, 2) object centres in the 64x64 frame's pixel coordinates (column, row)."""
        return self.renderer.to_pixels(self.object_poses[:, :2])

    def pose_slots(self) -> np.ndarray:
        """float32 (9, 3) object poses by palette colour, NaN for colours not in the scene (what a
        dataset records per frame: `bair_world.data.poses`)."""
        from bair_world.data.poses import pose_slots

        return pose_slots([s.palette for s in self.specs], self.object_poses)

    def labels(self) -> np.ndarray:
        """uint8 (64, 64) region labels of the current frame (see `bair_world.sim.render.LABEL_NAMES`)."""
        return self.renderer.draw_labels(self.physics.object_poses(), self._position, self.grip)

    def pose_state(self) -> "PoseState":
        """What the current frame is drawn from (object poses, end effector, grip): `true_flow`'s input."""
        return PoseState(self.physics.object_poses(), self._position.copy(), self.grip)

    def flow_from(self, before: "PoseState") -> np.ndarray:
        """float32 (64, 64, 2) true backward flow of the current frame from the frame drawn at ``before``
        (a `pose_state` taken earlier): see `bair_world.sim.flow`."""
        return true_flow(self.renderer, before, self.pose_state())

    def snapshot(self) -> tuple:
        """The world's dynamic state, for `restore` (a planner tries many futures from one state)."""
        return self.physics.state(), self._position.copy(), self.grip, self.frame

    def restore(self, snapshot: tuple) -> None:
        """Return to a `snapshot` of this world (see `TablePhysics.set_state` for its one approximation)."""
        physics, position, self.grip, self.frame = snapshot
        self.physics.set_state(physics)
        self._position = position.copy()

    def step(self, action, position, render: bool = True) -> np.ndarray | None:
        """Apply one action from `position` (see the class docstring), advance a frame, return it.

        ``render=False`` runs the physics only and returns None (``frame`` is None until the next
        rendered step): a planner imagining many candidates renders only the frames it scores.

        Raises:
            ValueError: if action is not 4 numbers or position not 3, or either holds NaN/inf.
        """
        action = _checked(action, 4, "action")
        position = _checked(position, 3, "position")
        self.grip = float(quantise_action(action, self.config)[GRIP_COLUMN])
        new = arm_step(self._position, action, position, self.config)
        self.physics.advance(self._position, new)
        self._position = new
        self.frame = self.renderer.draw(self.physics.object_poses(), new, self.grip) if render else None
        return self.frame


def position_bounds(config: SimConfig = SimConfig()) -> tuple[np.ndarray, np.ndarray]:
    """(3,) float64 low/high of the end-effector workspace (x, y, z in metres)."""
    return (np.array([config.x_range[0], config.y_range[0], config.z_range[0]]),
            np.array([config.x_range[1], config.y_range[1], config.z_range[1]]))


def quantise_action(action, config: SimConfig = SimConfig()) -> np.ndarray:
    """The action the world actually executes: dx, dy clipped to +-max_delta, columns 2-3 rounded and clipped.

    Args:
        action: (..., 4) [dx, dy, grip, z command] in BAIR units.

    Returns:
        float64 (..., 4); `PushWorld.step` gives the same frame for ``action`` and its quantised form.
    """
    a = np.array(action, dtype=np.float64)  # a copy
    if a.shape[-1:] != (4,):
        raise ValueError(f"quantise_action: action must have 4 columns, got shape {a.shape}")
    a[..., :2] = np.clip(a[..., :2], -config.max_delta, config.max_delta)
    a[..., GRIP_COLUMN] = np.clip(np.round(a[..., GRIP_COLUMN]), 0, MAX_GRIP)
    a[..., Z_COLUMN] = np.clip(np.round(a[..., Z_COLUMN]), 0, MAX_Z_COMMAND)
    return a


def arm_step(current, action, commanded=None, config: SimConfig = SimConfig()) -> np.ndarray:
    """The arm's kinematics of one frame, batched: the end-effector position after `PushWorld.step`.

    A pure function of positions and actions (no physics: objects never block the gripper), so a
    planner can derive the position column of every candidate action sequence exactly as the world
    will move. ``PushWorld.step(action, position)`` moves its arm to ``arm_step(world.position,
    action, position)``.

    Args:
        current: (..., 3) actual end-effector position (metres).
        action: (..., 4) [dx, dy, grip, z command]; see `PushWorld` for the semantics.
        commanded: (..., 3) position the action is relative to (None: ``current``, the usual case).
        config: the world's configuration (workspace, limits, speeds).

    Returns:
        float64 (..., 3) the new end-effector position.
    """
    cfg = config
    current = np.asarray(current, dtype=np.float64)
    commanded = current if commanded is None else np.asarray(commanded, dtype=np.float64)
    action = quantise_action(action, cfg)
    lo, hi = position_bounds(cfg)
    commanded = np.clip(commanded, lo, hi)
    delta = action[..., :2]
    z_cmd = action[..., Z_COLUMN].astype(np.int64)
    target = np.empty(np.broadcast_shapes(current.shape, commanded.shape, action.shape[:-1] + (3,)))
    target[..., :2] = commanded[..., :2] + delta
    # z target per command: 0 holds the commanded height, 1 lowers to z_low, 2 lifts to z_high
    target[..., 2] = np.choose(z_cmd, [np.broadcast_to(commanded[..., 2], z_cmd.shape), cfg.z_low, cfg.z_high])
    target = np.clip(target, lo, hi)
    move = (target - current) * cfg.track_gain
    reach = cfg.max_speed * cfg.frame_dt
    norm = np.hypot(move[..., 0], move[..., 1])
    scale = np.where(norm > reach, reach / np.where(norm > 0, norm, 1.0), 1.0)
    move[..., :2] *= scale[..., None]
    move[..., 2] = np.clip(move[..., 2], -cfg.z_speed * cfg.frame_dt, cfg.z_speed * cfg.frame_dt)
    return np.clip(current + move, lo, hi)


def _checked(value, size: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (size,):
        raise ValueError(f"PushWorld.step: {name} must have shape ({size},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"PushWorld.step: {name} contains NaN or inf: {arr.tolist()}")
    return arr


@dataclass
class Rollout:
    """One sequence of the pushing world driven by a data policy, with the simulator's ground truth.

    Attributes:
        frames: uint8 (T, 64, 64, 3) RGB.
        actions: float (T, 4); rows 2k and 2k+1 are identical.
        positions: float (T, 3); positions[t] is the end-effector position at frame t.
        object_pixels: float (T, N, 2) object centres in 64x64 pixel coordinates.
        labels: uint8 (T, 64, 64) region labels (0 static, 1 arm, 2 objects), or None if not asked for.
        flow: float32 (T, 64, 64, 2) true backward flow of frame t from frame t-1 (frame 0: zeros;
            `bair_world.sim.flow`), or None if not asked for.
        poses: float32 (T, 9, 3) object poses by palette colour (`PushWorld.pose_slots`), or None if
            not asked for.
    """

    frames: np.ndarray
    actions: np.ndarray
    positions: np.ndarray
    object_pixels: np.ndarray
    labels: np.ndarray | None = None
    flow: np.ndarray | None = None
    poses: np.ndarray | None = None


def rollout(seed: int, length: int = 30, config: SimConfig = SimConfig(), labels: bool = False,
            flow: bool = False, policy: str = DEFAULT_POLICY, poses: bool = False) -> Rollout:
    """Run sequence ``seed`` for `length` frames; frame t+1 = step(actions[t], positions[t]).

    ``policy`` names what drives it (`bair_world.sim.policy.POLICIES`; the default, ``scripted``, is
    every older dataset's). ``labels=True`` also records each frame's region labels, ``flow=True``
    each frame's true flow from the previous one, ``poses=True`` each frame's object poses by palette
    colour (the frames are the same either way).

    Raises:
        ValueError: ``length < 1`` or an unknown policy.
    """
    if length < 1:
        raise ValueError(f"rollout: length must be >= 1, got {length}")
    frames = np.empty((length, config.image_size, config.image_size, 3), np.uint8)
    actions, positions = np.empty((length, 4)), np.empty((length, 3))
    label_maps = np.empty((length, config.image_size, config.image_size), np.uint8) if labels else None
    flows = np.zeros((length, config.image_size, config.image_size, 2), np.float32) if flow else None
    pixels = before = None
    pose_rows = np.empty((length, 9, 3), np.float32) if poses else None
    for t, world, action in sequence_worlds(seed, length, config, policy):
        if pixels is None:
            pixels = np.empty((length, len(world.specs), 2))
        frames[t], positions[t], pixels[t], actions[t] = world.frame, world.position, world.object_pixels(), action
        if labels:
            label_maps[t] = world.labels()
        if poses:
            pose_rows[t] = world.pose_slots()
        if flow:
            if before is not None:
                flows[t] = world.flow_from(before)
            before = world.pose_state()
    return Rollout(frames, actions, positions, pixels, label_maps, flows, pose_rows)


def sequence_worlds(seed: int, length: int = 30, config: SimConfig = SimConfig(), policy: str = DEFAULT_POLICY):
    """Yield ``(t, world, action)`` for t = 0 .. length-1: the sequence `rollout` records.

    The world shows frame t when yielded (the same object each time, stepped in place after the
    yield; deep-copy it to keep a state); ``action`` float64 (4,) is the action of ``policy``
    (`bair_world.sim.policy.make_policy`: a pure function of the name and the seed) applied from
    frame t (a new one every second frame, held for two: `held`). Exact: the world is stepped with
    the float64 actions the policy draws, not the float32 copies a dataset stores, so the physics
    follows the recorded sequence bit for bit (a float32 replay drifts apart after a few contacts).

    Raises:
        ValueError: an unknown policy (on the first item).
    """
    world = PushWorld(seed, config)
    actor = make_policy(policy, seed, world.rng, config)
    action = None
    for t in range(length):
        action = held(t, action, lambda: actor.act(world.position, world.object_poses, world.radii))
        yield t, world, action
        if t + 1 < length:
            world.step(action, world.position)


def generate_sequence(seed: int, length: int = 30, config: SimConfig = SimConfig()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames uint8 (T,64,64,3), actions (T,4), positions (T,3)) of one scripted sequence (`rollout`)."""
    r = rollout(seed, length, config)
    return r.frames, r.actions, r.positions
