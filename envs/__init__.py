"""Gymnasium adapters: ``BairWorld-v0`` (+ native vector env, SB3 bridge), ``BairWorldGoal-v0``, and
``PushWorld-v0`` / ``PushWorldGoal-v0`` over the true pushing world (the ground truth).

``import bair_world`` registers the environments; this package is imported only when one is made.
"""

from bair_world.envs.bair_world_env import BairWorldEnv
from bair_world.envs.goal import BairWorldGoalEnv
from bair_world.envs.push_world_env import PushWorldEnv, PushWorldGoalEnv
from bair_world.envs.references import FolderReferences, Reference, ReferenceSource, SimReferences
from bair_world.envs.replay import Replay, replay_psnr, replay_references
from bair_world.envs.vector import BairWorldVectorEnv

__all__ = ["BairWorldEnv", "BairWorldVectorEnv", "BairWorldGoalEnv", "PushWorldEnv", "PushWorldGoalEnv", "FolderReferences", "Reference", "ReferenceSource",
           "SimReferences", "Replay", "replay_psnr", "replay_references", "BairWorldSB3VecEnv"]


def __getattr__(name):
    # Lazy: stable-baselines3 is imported only by those who use the bridge.
    if name == "BairWorldSB3VecEnv":
        from bair_world.envs.sb3 import BairWorldSB3VecEnv

        return BairWorldSB3VecEnv
    raise AttributeError(f"module 'bair_world.envs' has no attribute {name!r}")
