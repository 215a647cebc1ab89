"""Configuration of the synthetic pushing world (units: BAIR's metres, frames, pixels)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Bump when the generator's output changes for a given seed (names the cached default dataset).
FRAME_RATE = 10
"""Frames per second of BAIR (recorded at about 10 Hz) and so of the built-in world: the envs' render_fps
and the default speed of every video (demo, rollout, RecordVideo)."""
GENERATOR_VERSION = 3  # v3 adds labels.npz; frames, actions and positions are those of v2

# Meaning of the whole-number action columns (documented in bair_world.sim.world.PushWorld.step).
GRIP_COLUMN = 2
"""Action column 2: gripper closure level, 0 (open) .. 4 (closed); changes the finger gap only."""
Z_COLUMN = 3
"""Action column 3: height command, 0 = hold height, 1 = lower to `z_low`, 2 = lift to `z_high`."""
MAX_GRIP = 4
MAX_Z_COMMAND = 2


@dataclass(frozen=True)
class SimConfig:
    """Everything that shapes the pushing world; the defaults mimic BAIR's robot-pushing scene."""

    image_size: int = 64
    """Side of the returned RGB frame in pixels (BAIR: 64)."""
    render_scale: int = 3
    """Frames are drawn at image_size * render_scale and area-downsampled (anti-aliasing)."""

    x_range: tuple[float, float] = (0.40, 0.80)
    """Reachable end-effector x (metres, away from the robot / towards the camera)."""
    y_range: tuple[float, float] = (-0.30, 0.20)
    """Reachable end-effector y (metres, lateral; +y is to the right in the image)."""
    z_range: tuple[float, float] = (0.20, 0.30)
    """Reachable end-effector z (metres)."""
    z_low: float = 0.20
    """Height the gripper goes to on a `lower` command (Z_COLUMN == 1)."""
    z_high: float = 0.30
    """Height the gripper goes to on a `lift` command (Z_COLUMN == 2)."""
    contact_z: float = 0.235
    """The gripper collides with objects only while its z is below this height."""
    max_delta: float = 0.07
    """Action columns 0-1 (dx, dy) are clipped to +-max_delta metres."""

    table_z: float = 0.19
    """Height of the table surface in the camera's 3-D frame (the fingertips touch it at z_low)."""
    table_x: tuple[float, float] = (0.36, 0.84)
    """x extent of the table area objects can occupy (walls of the bin)."""
    table_y: tuple[float, float] = (-0.36, 0.26)
    """y extent of the table area objects can occupy (walls of the bin)."""

    frame_dt: float = 0.1
    """Simulated seconds per frame."""
    substeps: int = 4
    """Physics sub-steps per frame."""
    track_gain: float = 0.75
    """Fraction of the remaining distance to the target the gripper covers in one frame."""
    max_speed: float = 0.6
    """Largest gripper speed in metres per second (0.06 m per frame at the default frame_dt)."""
    z_speed: float = 0.5
    """Largest vertical gripper speed in metres per second."""
    gripper_radius: float = 0.016
    """Radius of the gripper's collision circle (metres)."""

    n_objects: tuple[int, int] = (3, 6)
    """Inclusive range of the number of movable objects per sequence."""
    object_size: tuple[float, float] = (0.022, 0.036)
    """Range of an object's characteristic radius (metres)."""
    object_height: tuple[float, float] = (0.02, 0.05)
    """Range of an object's height (metres); taller objects hide more table."""
    mass: tuple[float, float] = (0.05, 0.6)
    """Range of the hidden per-sequence object mass (kg)."""
    friction: tuple[float, float] = (0.15, 0.8)
    """Range of the hidden per-sequence table friction coefficient."""

    camera_jitter: float = 0.02
    """Standard deviation (metres) of the per-sequence camera position/target jitter."""
    light_jitter: float = 0.08
    """Standard deviation of the per-sequence brightness / per-channel colour gain."""
    push_bias: float = 0.85
    """Probability that the scripted policy's next goal is a push through an object."""


def action_bounds(config: SimConfig = SimConfig()) -> tuple[np.ndarray, np.ndarray]:
    """(4,) float32 low/high of the executable action: dx, dy within +-max_delta; grip 0..4; z command 0..2."""
    low = np.array([-config.max_delta, -config.max_delta, 0.0, 0.0], np.float32)
    high = np.array([config.max_delta, config.max_delta, MAX_GRIP, MAX_Z_COMMAND], np.float32)
    return low, high
