"""Gymnasium adapters: ``BairWorld-v0`` (+ native vector env, SB3 bridge), ``BairWorldGoal-v0``, and
``PushWorld-v0`` / ``PushWorldGoal-v0`` over the true pushing world (the ground truth).

``import bair_world`` registers the environments; this package is imported only when one is made.
"""

from bair_world.lazy import lazy_exports

# Imported on first use (PEP 562), so `bair-world demo --help` (a module of this package) does not load
# torch; `from bair_world.envs import BairWorldEnv` works as before.
_LAZY = {
    "BairWorldEnv": "bair_world_env", "BairWorldGoalEnv": "goal", "PushWorldEnv": "push_world_env",
    "PushWorldGoalEnv": "push_world_env", "FolderReferences": "references", "Reference": "references",
    "ReferenceSource": "references", "SimReferences": "references", "Replay": "replay", "replay_psnr": "replay",
    "replay_references": "replay", "BairWorldVectorEnv": "vector", "BairWorldSB3VecEnv": "sb3",
    "IntegratePosition": "wrappers", "IntegratePositionVector": "wrappers",
}

__all__ = ["BairWorldEnv", "BairWorldVectorEnv", "BairWorldGoalEnv", "PushWorldEnv", "PushWorldGoalEnv", "FolderReferences", "Reference", "ReferenceSource",
           "SimReferences", "Replay", "replay_psnr", "replay_references", "BairWorldSB3VecEnv", "IntegratePosition",
           "IntegratePositionVector"]


__getattr__, __dir__ = lazy_exports("bair_world.envs", _LAZY)
