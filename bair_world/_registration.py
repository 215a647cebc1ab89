"""Gymnasium registration of the bair-world environments, by string entry points only."""

import gymnasium as gym

# (id, entry point, vector entry point or None, max_episode_steps or None)
ENVIRONMENTS: list[tuple[str, str, str | None, int | None]] = [
    # 28 steps = BAIR's 30 frames - 2 context frames; the env also truncates itself at the reference's end.
    ("BairWorld-v0", "bair_world.envs.bair_world_env:BairWorldEnv", "bair_world.envs.vector:BairWorldVectorEnv", 28),
    # Goal-reaching in the learned world, and the true pushing world (same spaces) to score agents in.
    ("BairWorldGoal-v0", "bair_world.envs.goal:BairWorldGoalEnv", None, 28),
    ("PushWorld-v0", "bair_world.envs.push_world_env:PushWorldEnv", None, 28),
    ("PushWorldGoal-v0", "bair_world.envs.push_world_env:PushWorldGoalEnv", None, 28),
]


def register_envs() -> None:
    """Register every environment in ENVIRONMENTS once (safe to call repeatedly)."""
    for env_id, entry_point, vector_entry_point, max_steps in ENVIRONMENTS:
        if env_id in gym.registry:
            continue
        kwargs = {"id": env_id, "entry_point": entry_point, "max_episode_steps": max_steps}
        if vector_entry_point is not None:
            kwargs["vector_entry_point"] = vector_entry_point
        gym.register(**kwargs)
