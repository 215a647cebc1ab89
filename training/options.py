"""The ``bair-world train`` command line: options generated from `TrainConfig`, presets, resume.

Precedence: dataclass defaults < the preset (or, with ``--resume``, the run's own config) < the
options given. The seed's option names (``--niter``, ``--kl_anneal_cyclical``, ...) are accepted.
"""

from __future__ import annotations

import argparse
import time

from bair_world.training.configcli import Alias, add_dataclass_arguments, apply_overrides, explicit_values
from bair_world.training import presets
from bair_world.training.config import TrainConfig

DESCRIPTION = (f"Train an SVG world model: bair-world train [--preset NAME] [--quick] [options]; presets: "
               f"{', '.join(presets.PRESETS)}. With no options: the `cpu` preset on the embedded synthetic pushing-world data "
               "(generated once into the cache); --quick trains on a small quick-trial dataset instead.")
"""The command's description; lists the real presets."""

SEED_ALIASES = [
    Alias("--niter", "epochs"),
    Alias("--kl_anneal_cyclical", "kl_anneal", const="cyclical"),
    Alias("--kl_anneal_monotonic", "kl_anneal", const="monotonic"),
]


def build_parser(preset_name: str = presets.DEFAULT_PRESET, prog: str = "train.py",
                 description: str | None = None) -> argparse.ArgumentParser:
    """The train command line, generated from `TrainConfig` (model fields flattened).

    The help shows the values of preset ``preset_name``: those a run without the option uses.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description or DESCRIPTION)
    parser.add_argument("--preset", choices=sorted(presets.PRESETS), default=None,
                        help=f"base recipe; explicit options override it (default: {presets.DEFAULT_PRESET}, "
                             "or the resumed run's own config)")
    add_dataclass_arguments(parser, TrainConfig, aliases=SEED_ALIASES, shown_defaults=presets.training_preset(preset_name),
                            title=f"training and model options (defaults: the {preset_name!r} preset's values; "
                                  "`--preset NAME --help` shows another's)")
    return parser


def _preset_in(argv: list[str] | None) -> str:
    """The ``--preset`` named in argv if it is a known one, else the default (for the help's values)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset")
    name = pre.parse_known_args(argv)[0].preset
    return name if name in presets.PRESETS else presets.DEFAULT_PRESET


def parse_config(argv: list[str] | None = None, prog: str = "train.py",
                 description: str | None = None) -> TrainConfig:
    """Command line -> `TrainConfig`: defaults < preset (or the resumed run's config) < explicit options.

    Raises:
        RunFolderError: ``--resume`` names a folder without a readable train_config.json.
    """
    parser = build_parser(_preset_in(argv), prog, description)
    ns = parser.parse_args(argv)
    explicit = explicit_values(ns, TrainConfig)
    if explicit.get("resume") is not None:
        if ns.preset is not None:
            parser.error("--preset and --resume do not mix: a resumed run keeps its own config")
        base = TrainConfig.load(explicit["resume"])
        name = None
    else:
        base = presets.training_preset(ns.preset or presets.DEFAULT_PRESET)
        name = f"{ns.preset or presets.DEFAULT_PRESET}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        cfg = apply_overrides(base, explicit)
    except ValueError as e:
        parser.error(str(e))
    if cfg.name is None and name is not None:
        cfg = cfg.replace(name=name)
    return cfg
