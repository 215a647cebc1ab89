"""The `bair-world` command line: one table of commands, one convention, one error mapper.

Every command is a module named in `COMMANDS` that defines ``configure_parser(parser)`` (adds its
arguments to the parser it is given, importing nothing heavy) and ``run(args) -> int | None`` (the
exit status; None is 0). A user's mistake that ``run`` raises (`bair_world.cli_errors.USER_ERRORS`)
becomes one line and exit status 2 in `run_command`. The modules stay beside the code they drive
(``bair_world/data``, ``bair_world``, ``envs/``, ``training/``: the core imports neither envs nor
training, and the training commands are also the scripts ``python training/<name>.py``, whose
``main`` is `script_main`). Modules are named as strings and imported only when their command is
chosen, so `bair-world --help` stays fast.
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
    (None, "train"): ("bair_world.training.options", "train a world model (presets, resume, time budget, DDP)"),
    (None, "evaluate"): ("bair_world.training.evaluate",
                         "PSNR/SSIM of a checkpoint: table, per-step curve, metrics.json"),
    (None, "bundle"): ("bair_world.training.bundle",
                       "export a run's best checkpoint as the environment's default model"),
    (None, "readout"): ("bair_world.training.readout", "train (or score) a state readout of a frozen checkpoint"),
    (None, "rollout"): ("bair_world.rollout_cli", "export a recorded | predicted | error rollout video"),
    (None, "demo"): ("bair_world.envs.demo", "replay recorded rollouts in BairWorld-v0: PSNR table and video"),
    ("data", "synth"): ("bair_world.data.synthetic", "write BAIR-format data from the built-in pushing world"),
    ("data", "convert"): ("bair_world.data.tfrecord", "convert the original BAIR TFRecords to the folder layout"),
    ("data", "check"): ("bair_world.data.validate", "validate a BAIR-format dataset (folder layout or packed)"),
    ("data", "pack"): ("bair_world.data.packed", "pack a BAIR folder dataset into the compact, memory-mapped form"),
}


def _subcommand_in(argv: list[str]) -> tuple[str | None, str] | None:
    positional = [a for a in argv if not a.startswith("-")]
    if positional and (None, positional[0]) in COMMANDS:
        return (None, positional[0])
    if len(positional) >= 2 and (positional[0], positional[1]) in COMMANDS:
        return (positional[0], positional[1])
    return None


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """Build the parser; only the chosen command's module is imported to add its arguments."""
    parser = argparse.ArgumentParser(prog="bair-world", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {bair_world.__version__}")
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
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


def run_parsed(prog: str, module: str, args: argparse.Namespace) -> int:
    """Run command ``module`` on its parsed ``args`` through the one error mapper.

    An OSError that names no file names ``args.out`` (read when it happens: ``run`` may fill in its default).
    """
    return run_command(prog, lambda: importlib.import_module(module).run(args), lambda: getattr(args, "out", None))


def script_main(module: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """``python training/<name>.py``: command ``module`` on a parser of its own (``bair-world <name>``'s options)."""
    command = importlib.import_module(module)
    parser = argparse.ArgumentParser(prog=prog, description=(command.__doc__ or "").splitlines()[0])
    command.configure_parser(parser)
    parser.set_defaults(_prog=parser.prog)  # what a command's messages name, as under bair-world
    return run_parsed(parser.prog, module, parser.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    return run_parsed(args._prog, args._module, args)


if __name__ == "__main__":
    sys.exit(main())
