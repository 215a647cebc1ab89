"""`bair-world`'s own help and version (the subcommands are tested with the code they drive)."""

from __future__ import annotations

import pytest

import bair_world
from bair_world import cli


def _output(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_help_describes_the_commands_and_the_training_scripts(capsys):
    out = " ".join(_output(["--help"], capsys).split())  # argparse wraps to the terminal's width
    assert "world model of the BAIR robot-pushing scene" in out and "BairWorld-v0" in out
    for (group, name), (_, help_text) in cli.COMMANDS.items():
        assert (help_text if group is None else cli.GROUP_HELP[group]) in out
    assert "python training/train.py" in out and "python training/evaluate.py" in out and "--version" in out


def test_version(capsys):
    assert _output(["--version"], capsys).strip() == f"bair-world {bair_world.__version__}"


def test_group_help_lists_its_subcommands(capsys):
    out = _output(["data", "--help"], capsys)
    assert cli.GROUP_HELP["data"] in out
    assert all(help_text in out for (group, _), (_, help_text) in cli.COMMANDS.items() if group == "data")


@pytest.mark.parametrize("name", ["train", "evaluate", "bundle", "readout"])
def test_training_commands_are_bair_world_subcommands(name, capsys):
    out = _output([name, "--help"], capsys)
    assert out.startswith(f"usage: bair-world {name}")
    assert name in _output(["--help"], capsys)


def test_a_training_script_is_the_same_command(capsys):
    """``python training/bundle.py`` (`script_main`) has the options of ``bair-world bundle``, under its own name."""
    from bair_world.training import bundle

    with pytest.raises(SystemExit):
        bundle.main(["--help"])
    script = capsys.readouterr().out
    command = _output(["bundle", "--help"], capsys)
    assert script.startswith("usage: bundle.py") and command.startswith("usage: bair-world bundle")
    assert script.split("\n", 1)[1].split("options:")[1] == command.split("\n", 1)[1].split("options:")[1]


def test_training_scripts_shadow_no_top_level_module():
    """``python training/train.py`` puts training/ first on sys.path: none of its files may be
    imported as a top-level module by the package or its dependencies (so no sys.path edits)."""
    import subprocess
    import sys
    from pathlib import Path

    training = Path(__file__).resolve().parent.parent / "training"
    code = ("import os, sys; sys.path.insert(0, sys.argv[1])\n"
            "import bair_world.training.train, bair_world.training.evaluate, bair_world.training.bundle\n"
            "import bair_world.envs, torch.utils.tensorboard, matplotlib.pyplot, stable_baselines3\n"
            "bad = sorted(m for m, mod in list(sys.modules.items()) if not m.startswith('bair_world')"
            " and os.path.dirname(os.path.abspath(getattr(mod, '__file__', None) or '/')) == sys.argv[1])\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code, str(training)], check=True, timeout=300)
