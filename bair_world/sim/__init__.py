"""The built-in pushing world: a pymunk tabletop rendered like BAIR's camera, writing BAIR-format data."""

from bair_world.sim.config import GENERATOR_VERSION, GRIP_COLUMN, Z_COLUMN, SimConfig
from bair_world.sim.start import replay_world, start_world
from bair_world.sim.stats import MotionStats, motion_stats, sequence_motion
from bair_world.sim.world import (PushWorld, Rollout, action_bounds, arm_step, generate_sequence, position_bounds,
                                  quantise_action, rollout, scripted_worlds)

__all__ = [
    "GENERATOR_VERSION",
    "GRIP_COLUMN",
    "Z_COLUMN",
    "MotionStats",
    "PushWorld",
    "Rollout",
    "action_bounds",
    "arm_step",
    "SimConfig",
    "generate_sequence",
    "motion_stats",
    "position_bounds",
    "quantise_action",
    "replay_world",
    "rollout",
    "scripted_worlds",
    "sequence_motion",
    "start_world",
]
