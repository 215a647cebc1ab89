"""The `bair-world` command line.

Each subcommand lives with the code it drives: the module named in COMMANDS defines
`configure_parser(parser)` (adds its arguments) and `run(args) -> int` (exit status); a user's
mistake it raises (`bair_world.cli_errors.USER_ERRORS`) becomes one line and exit status 2 in
`run_command`, the one error mapper. The training commands (PASSTHROUGH: train, evaluate, bundle,
readout) parse their own arguments: their function gets the rest of the command line and the
program name (``python training/<name>.py`` is the same command).
Modules are named as strings and imported only when their subcommand is chosen, so `bair-world
--help` stays fast and the core imports nothing of `bair_world.training`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import bair_world
from bair_world.cli_errors import run_command

DESCRIPTION = """\
bair-world: a learned, action-conditioned video world model of the BAIR robot-pushing scene,
served as the Gymnasium environment BairWorld-v0. Train (train), score (evaluate) and bundle (bundle)
a model, play the bundled one (demo), export recorded | predicted | error videos (rollout), and write,
convert, check or pack BAIR-format data (data)."""
EPILOG = """\
examples:
  bair-world train                              train (default: the `cpu` preset on the embedded data)
  bair-world evaluate                           PSNR/SSIM of a checkpoint (default: the bundled model)
  bair-world bundle runs/<name>                 make a trained model the environment's default
in a source checkout the training commands also run as scripts: python training/train.py (also under torchrun),
python training/evaluate.py, python training/bundle.py.
run `bair-world COMMAND --help` for a command's options."""
GROUP_HELP = {"data": "write, convert, check and pack BAIR-format datasets"}
BAIR_SOURCE = """\
where the real data comes from: the BAIR robot pushing dataset (Ebert et al. 2017), softmotion30_44k,
is the 30 GB archive http://rail.eecs.berkeley.edu/datasets/bair_robot_pushing_dataset_v0.tar (the
one SVG, SAVP and tensorflow_datasets' bair_robot_pushing_small use); unpack it
(tar -xf bair_robot_pushing_dataset_v0.tar) and pass its softmotion30_44k/ folder, which holds
train/ and test/ traj_*_to_*.tfrecords, as --tfrecords."""
# (group, name) -> text after a command's options in its --help.
EPILOGS: dict[tuple[str | None, str], str] = {("data", "convert"): BAIR_SOURCE}

# (group, name) -> (module, one-line help); group None means a top-level command.
COMMANDS: dict[tuple[str | None, str], tuple[str, str]] = {
    ("data", "synth"): ("bair_world.data.synthetic", "write BAIR-format data from the built-in pushing world"),
    ("data", "convert"): ("bair_world.data.tfrecord", "convert the original BAIR TFRecords to the folder layout"),
    ("data", "check"): ("bair_world.data.validate", "validate a BAIR-format dataset (folder layout or packed)"),
    ("data", "pack"): ("bair_world.data.packed", "pack a BAIR folder dataset into the compact, memory-mapped form"),
    (None, "rollout"): ("bair_world.rollout_cli", "export a recorded | predicted | error rollout video"),
    (None, "demo"): ("bair_world.envs.demo", "replay recorded rollouts in BairWorld-v0: PSNR table and video"),
}

# name -> (module, function(argv, prog) -> exit status, one-line help): commands that parse their own arguments.
PASSTHROUGH: dict[str, tuple[str, str, str]] = {
    "train": ("bair_world.training.train", "main", "train a world model (presets, resume, time budget, DDP)"),
    "evaluate": ("bair_world.training.evaluate", "main", "PSNR/SSIM of a checkpoint: table, per-step curve, metrics.json"),
    "bundle": ("bair_world.training.bundle", "main", "export a run's best checkpoint as the environment's default model"),
    "readout": ("bair_world.training.readout", "main", "train (or score) a state readout of a frozen checkpoint"),
}
# name -> (module, function(argv, prog)): parses a PASSTHROUGH command's arguments without importing
# torch, so `bair-world train --help` prints at once (argparse exits after the help; a command
# line without a help request returns and goes on to the command itself).
HELP_FIRST: dict[str, tuple[str, str]] = {
    "train": ("bair_world.training.options", "parse_config"),
    "bundle": ("bair_world.training.bundle", "parse_arguments"),
}
HELP_FLAGS = ("-h", "--help")


def _subcommand_in(argv: list[str]) -> tuple[str | None, str] | None:
    positional = [a for a in argv if not a.startswith("-")]
    if positional and (None, positional[0]) in COMMANDS:
        return (None, positional[0])
    if len(positional) >= 2 and (positional[0], positional[1]) in COMMANDS:
        return (positional[0], positional[1])
    return None


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """Build the parser; only the chosen subcommand's module is imported to add its arguments."""
    parser = argparse.ArgumentParser(prog="bair-world", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {bair_world.__version__}")
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, _, help_text) in PASSTHROUGH.items():
        top.add_parser(name, help=help_text, add_help=False)
    groups: dict[str, argparse._SubParsersAction] = {}
    chosen = _subcommand_in(argv)
    for (group, name), (module, help_text) in COMMANDS.items():
        if group is None:
            sub = top.add_parser(name, help=help_text, description=help_text)
        else:
            if group not in groups:
                gp = top.add_parser(group, help=GROUP_HELP[group], description=GROUP_HELP[group])
                groups[group] = gp.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
            sub = groups[group].add_parser(name, help=help_text, description=help_text, epilog=EPILOGS.get((group, name)),
                                           formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(_module=module, _prog=sub.prog)
        if chosen == (group, name):
            importlib.import_module(module).configure_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in PASSTHROUGH:
        module, function, _ = PASSTHROUGH[argv[0]]
        if argv[0] in HELP_FIRST and any(a in HELP_FLAGS for a in argv[1:]):
            help_module, help_function = HELP_FIRST[argv[0]]
            getattr(importlib.import_module(help_module), help_function)(argv[1:], prog=f"bair-world {argv[0]}")
        return int(getattr(importlib.import_module(module), function)(argv[1:], prog=f"bair-world {argv[0]}") or 0)
    args = build_parser(argv).parse_args(argv)
    return run_command(args._prog, lambda: importlib.import_module(args._module).run(args), getattr(args, "out", None))


if __name__ == "__main__":
    sys.exit(main())
