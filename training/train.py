"""Train an SVG world model: ``python training/train.py [--preset tiny|cpu|seed] [options]``.

With no arguments it trains the `cpu` preset on the embedded synthetic pushing-world data. Every
`TrainConfig` / `ModelConfig` field is an option (``--help``); the seed's names (``--niter``,
``--data_root``, ``--kl_anneal_cyclical``, ...) are accepted too. ``torchrun --nproc_per_node N
training/train.py ...`` trains with DDP. ``--resume RUN_DIR`` continues a run from its last checkpoint; ``--max-minutes M`` stops after M
minutes (resumable at that exact step).
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    # Run as a script: sys.path[0] is training/, whose modules must only be imported as
    # bair_world.training.* (a training/*.py must never shadow a top-level module).
    sys.path.pop(0)

import argparse
import json
import signal
import time
from pathlib import Path

from bair_world.checkpoint import CheckpointError
from bair_world.configcli import Alias, add_dataclass_arguments, apply_overrides, explicit_values, to_dict
from bair_world.data import DataError
from bair_world.training import presets
from bair_world.training.config import TrainConfig
from bair_world.training.engine import TrainingDiverged, run_training
from bair_world.training.reporting import atomic_write_bytes
from bair_world.training.runlock import RunFolderError

SEED_ALIASES = [
    Alias("--niter", "epochs"),
    Alias("--kl_anneal_cyclical", "kl_anneal", const="cyclical"),
    Alias("--kl_anneal_monotonic", "kl_anneal", const="monotonic"),
]
CONFIG_FILE = "train_config.json"


def build_parser(preset_name: str = presets.DEFAULT_PRESET) -> argparse.ArgumentParser:
    """The train.py command line, generated from `TrainConfig` (model fields flattened).

    The help shows the values of preset ``preset_name``: those a run without the option uses.
    """
    parser = argparse.ArgumentParser(prog="train.py", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(presets.PRESETS), default=None,
                        help=f"base recipe; explicit options override it (default: {presets.DEFAULT_PRESET}, "
                             "or the resumed run's own config)")
    add_dataclass_arguments(parser, TrainConfig, aliases=SEED_ALIASES, shown_defaults=presets.preset(preset_name),
                            title=f"training and model options (defaults: the {preset_name!r} preset's values; "
                                  "`--preset NAME --help` shows another's)")
    return parser


def _preset_in(argv: list[str] | None) -> str:
    """The ``--preset`` named in argv if it is a known one, else the default (for the help's values)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset")
    name = pre.parse_known_args(argv)[0].preset
    return name if name in presets.PRESETS else presets.DEFAULT_PRESET


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """Command line -> `TrainConfig`: defaults < preset (or the resumed run's config) < explicit options."""
    parser = build_parser(_preset_in(argv))
    ns = parser.parse_args(argv)
    explicit = explicit_values(ns, TrainConfig)
    if explicit.get("resume") is not None:
        if ns.preset is not None:
            parser.error("--preset and --resume do not mix: a resumed run keeps its own config")
        base = load_run_config(explicit["resume"])
        name = None
    else:
        base = presets.preset(ns.preset or presets.DEFAULT_PRESET)
        name = f"{ns.preset or presets.DEFAULT_PRESET}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        cfg = apply_overrides(base, explicit)
    except ValueError as e:
        parser.error(str(e))
    if cfg.name is None and name is not None:
        cfg = cfg.replace(name=name)
    return cfg


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """The `TrainConfig` a run folder was started with (its train_config.json).

    Raises:
        RunFolderError: the file is missing (not a run folder) or holds a bad config (names the file).
    """
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise RunFolderError(f"{path}: missing: not a train.py run folder, nothing to resume")
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise RunFolderError(f"{path}: unreadable run config ({e})") from None


def save_run_config(run_dir: Path, cfg: TrainConfig) -> None:
    """Write the run's config (without the resume pointer) as train_config.json, atomically."""
    data = to_dict(cfg.replace(resume=None))
    atomic_write_bytes(Path(run_dir) / CONFIG_FILE, json.dumps(data, indent=2).encode())


def main(cfg: TrainConfig | None = None) -> dict:
    """Train with ``cfg`` (default: the `cpu` preset) and return the run summary.

    Returns:
        ``{"run_dir", "epoch", "step", "best_val_psnr", "val_psnr", "baseline_psnr", "seq_per_s",
        "history", "stopped_by_budget", "world_size", "ranks_in_sync", "is_main"}``.

    Raises:
        TrainingDiverged: the loss became NaN/inf (the message names the step; the last good
            checkpoint is kept).
        DataError: the data is missing or malformed.
        CheckpointError: resuming from a corrupt or incomplete ``last`` checkpoint (names the file).
    """
    cfg = presets.preset(presets.DEFAULT_PRESET) if cfg is None else cfg
    return run_training(cfg, save_config=save_run_config)


def cli(argv: list[str] | None = None) -> int:
    """Entry point: parse, train, print the summary.

    Every failure is one line on stderr naming the argument, file or folder. Exit status: 0 done,
    1 diverged, 2 a bad argument, file or folder (nothing trained), 128 + the signal's number when
    SIGINT/SIGTERM stopped the run (its resumable checkpoint is saved; the line says how to resume).
    """
    try:
        cfg = parse_config(argv)
        summary = main(cfg)
    except TrainingDiverged as e:
        print(f"train.py: stopped: {e}", file=sys.stderr)
        return 1
    except DataError as e:
        print(f"train.py: bad data: {e}", file=sys.stderr)
        return 2
    except CheckpointError as e:
        print(f"train.py: cannot resume: {e}", file=sys.stderr)
        return 2
    except RunFolderError as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an unwritable, read-only or full log dir, a path that is a file
        where = f"{e.filename}: " if e.filename else ""
        print(f"train.py: cannot write: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the training loop (or a second Ctrl-C): no checkpoint of this step
        print("train.py: interrupted before a checkpoint of the current step was saved; --resume continues "
              "from the last saved one, if any", file=sys.stderr)
        return 130
    if summary.get("stopped_by_signal"):
        print(f"train.py: stopped by {summary['stopped_by_signal']} after step {summary['step']}; checkpoint saved, "
              f"continue with: python training/train.py --resume {summary['run_dir']}", file=sys.stderr)
        return 128 + int(getattr(signal, summary["stopped_by_signal"]))
    if summary.get("is_main", True):
        print(f"run folder: {summary['run_dir']}")
        print(f"epochs {summary['epoch']}, steps {summary['step']}, {summary['seq_per_s']:.1f} sequences/s")
        print(f"validation PSNR {summary['val_psnr']:.2f} dB (best {summary['best_val_psnr']:.2f} dB), "
              f"copy-last-frame baseline {summary['baseline_psnr']:.2f} dB")
        if summary.get("stopped_by_budget"):
            print(f"stopped by the {cfg.max_minutes:g} minute budget; continue with --resume {summary['run_dir']}")
        if summary.get("world_size", 1) > 1:
            print(f"parameters identical on all {summary['world_size']} ranks: {summary['ranks_in_sync']}")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
