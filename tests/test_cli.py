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
    out = _output(["--help"], capsys)
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
