"""The built-in pushing world: a pymunk tabletop rendered like BAIR's camera, writing BAIR-format data."""

from bair_world.sim.config import GENERATOR_VERSION, GRIP_COLUMN, Z_COLUMN, SimConfig, action_bounds
from bair_world.sim.policy import DEFAULT_POLICY, POLICIES, check_policy
from bair_world.sim.start import replay_world, start_world
from bair_world.sim.stats import MotionStats, motion_stats, sequence_motion
from bair_world.sim.world import (PushWorld, Rollout, arm_step, generate_sequence, position_bounds, quantise_action,
                                  rollout, sequence_worlds)

__all__ = [
    "DEFAULT_POLICY",
    "GENERATOR_VERSION",
    "GRIP_COLUMN",
    "Z_COLUMN",
    "MotionStats",
    "POLICIES",
    "PushWorld",
    "Rollout",
    "action_bounds",
    "arm_step",
    "check_policy",
    "SimConfig",
    "generate_sequence",
    "motion_stats",
    "position_bounds",
    "quantise_action",
    "replay_world",
    "rollout",
    "sequence_motion",
    "sequence_worlds",
    "start_world",
]
