"""bair-world: an action-conditioned video world model of the BAIR robot-pushing scene.

Importing the package registers the Gymnasium environments (gymnasium 1.x loads no plugins);
registration names entry points as strings, so `bair_world` itself never imports `bair_world.envs`.
"""

__version__ = "0.1.0"

from bair_world._registration import register_envs

register_envs()


def load_model(path=None, device="cpu"):
    """Rebuild an SVG model from a checkpoint directory (safetensors + JSON, nothing unpickled);
    None: the bundled default, as the envs' ``checkpoint=None``."""
    from bair_world.checkpoint import load_model as _load

    return _load(path, device=device)


__all__ = ["__version__", "load_model"]
