"""The ``bair-world train`` command (``python training/train.py``): options generated from `TrainConfig`.

Precedence: dataclass defaults < the preset (or, with ``--resume``, the run's own config) < the
options given. The seed's option names (``--niter``, ``--kl_anneal_cyclical``, ...) are accepted.
The parser does not depend on the preset: `configure_parser` adds every option once (the help shows
the default preset's values; ``--preset NAME --help`` rewrites them to NAME's), and `config_of` layers
the parsed options over the preset. Torch-free, so ``bair-world train --help`` answers at once; `run`
imports the training loop.
"""

from __future__ import annotations

import argparse
import time

from bair_world.training.configcli import (Alias, add_dataclass_arguments, apply_overrides, explicit_values,
                                           show_defaults)
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


class _PresetAction(argparse.Action):
    """Stores ``--preset`` and shows that preset's values as the options' defaults in a later ``--help``."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        show_defaults(parser, TrainConfig, presets.training_preset(values))


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add ``--preset`` and every `TrainConfig` field (model fields flattened) to ``parser``."""
    parser.description = DESCRIPTION
    parser.add_argument("--preset", choices=sorted(presets.PRESETS), default=None, action=_PresetAction,
                        help=f"base recipe; explicit options override it (default: {presets.DEFAULT_PRESET}, "
                             "or the resumed run's own config)")
    add_dataclass_arguments(parser, TrainConfig, aliases=SEED_ALIASES,
                            shown_defaults=presets.training_preset(presets.DEFAULT_PRESET),
                            title="training and model options (defaults: the preset's values; "
                                  "`--preset NAME --help` shows another's)")


def config_of(args: argparse.Namespace) -> TrainConfig:
    """Parsed options -> `TrainConfig`: defaults < preset (or the resumed run's config) < explicit options.

    Raises:
        RunFolderError: ``--resume`` names a folder without a readable train_config.json.
        ValueError: ``--preset`` with ``--resume``, or an option's value out of range (names the field).
    """
    explicit = explicit_values(args, TrainConfig)
    if explicit.get("resume") is not None:
        if args.preset is not None:
            raise ValueError("--preset and --resume do not mix: a resumed run keeps its own config")
        base, name = TrainConfig.load(explicit["resume"]), None
    else:
        preset = args.preset or presets.DEFAULT_PRESET
        base, name = presets.training_preset(preset), f"{preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg = apply_overrides(base, explicit)
    return cfg.replace(name=name) if cfg.name is None and name is not None else cfg


def parse_config(argv: list[str] | None = None, prog: str = "train.py") -> TrainConfig:
    """Command line -> `TrainConfig`; a bad value is argparse's usage error (exit status 2).

    Raises:
        RunFolderError: ``--resume`` names a folder without a readable train_config.json.
    """
    parser = argparse.ArgumentParser(prog=prog)
    configure_parser(parser)
    try:
        return config_of(parser.parse_args(argv))
    except ValueError as e:
        parser.error(str(e))


def run(args: argparse.Namespace) -> int:
    """Train with the parsed options (`bair_world.training.train.run_config`)."""
    started = time.perf_counter()  # --max-minutes counts the whole invocation (parsing took milliseconds)
    from bair_world.training.train import run_config

    return run_config(config_of(args), getattr(args, "_prog", "train.py"), started)
