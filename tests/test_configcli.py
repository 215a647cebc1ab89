"""The dataclass -> argparse generator (bair_world.training.configcli) and train.py's command line."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from bair_world.training.configcli import Alias, add_dataclass_arguments, apply_overrides, explicit_values, field_docs, to_dict


@dataclass(frozen=True)
class Inner:
    """Nested config."""

    depth: int = 3
    """How deep the thing goes."""


@dataclass(frozen=True)
class Outer:
    """Test config."""

    inner: Inner = field(default_factory=Inner)
    """Nested block."""
    learning_rate: float = 0.1
    """Step size (100% of it)."""
    use_gpu: bool = False
    """Run on the GPU."""
    mode: Literal["fast", "slow"] = "fast"
    """Which mode."""
    out: Path | None = None
    """Where to write."""
    clip: float | None = 1.0
    """Clip value."""


def _parse(argv, aliases=()):
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Outer, aliases=list(aliases))
    ns = parser.parse_args(argv)
    return parser, apply_overrides(Outer(), explicit_values(ns, Outer))


def test_field_docs_are_read_from_attribute_docstrings():
    docs = field_docs(Outer)
    assert docs["learning_rate"] == "Step size (100% of it)."
    assert docs["use_gpu"] == "Run on the GPU."


def test_no_options_keeps_defaults_and_explicit_values_is_empty():
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Outer)
    assert explicit_values(parser.parse_args([]), Outer) == {}


def test_kebab_and_snake_spellings_types_and_nested_fields():
    _, cfg = _parse(["--learning-rate", "0.5", "--depth", "7", "--use-gpu", "--mode", "slow",
                     "--out", "x/y", "--clip", "none"])
    assert cfg == Outer(inner=Inner(depth=7), learning_rate=0.5, use_gpu=True, mode="slow", out=Path("x/y"),
                        clip=None)
    _, cfg = _parse(["--learning_rate", "0.25", "--no-use-gpu"])
    assert cfg.learning_rate == 0.25 and cfg.use_gpu is False


def test_help_shows_docstrings_and_defaults(capsys):
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Outer)
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "Step size (100% of it). (default: 0.1)" in out
    assert "--use-gpu, --no-use-gpu" in out


@pytest.mark.parametrize("argv", [["--mode", "medium"], ["--learning-rate", "abc"], ["--depth", "1.5"]])
def test_bad_values_are_rejected(argv, capsys):
    with pytest.raises(SystemExit):
        _parse(argv)
    assert "error" in capsys.readouterr().err


def test_aliases_value_and_const():
    aliases = [Alias("--lr", "learning_rate"), Alias("--slow", "mode", const="slow")]
    _, cfg = _parse(["--lr", "0.3", "--slow"], aliases)
    assert cfg.learning_rate == 0.3 and cfg.mode == "slow"


def test_alias_for_unknown_field_is_an_error():
    with pytest.raises(ValueError, match="nope"):
        _parse([], [Alias("--x", "nope")])


def test_duplicate_field_names_in_tree_are_an_error():
    @dataclass
    class Clash:
        inner: Inner = field(default_factory=Inner)
        depth: int = 1

    with pytest.raises(ValueError, match="depth"):
        add_dataclass_arguments(argparse.ArgumentParser(), Clash)


def test_apply_overrides_rejects_unknown_fields_and_to_dict_is_json_friendly():
    with pytest.raises(ValueError, match="bogus"):
        apply_overrides(Outer(), {"bogus": 1})
    d = to_dict(Outer(out=Path("a")))
    assert d["out"] == "a" and d["inner"] == {"depth": 3}


# -- train.py's command line ------------------------------------------------------------------------

def test_train_cli_defaults_to_cpu_preset():
    from bair_world.training import presets
    from bair_world.training.train import parse_config

    cfg = parse_config([])
    assert cfg.replace(name=None) == presets.training_preset("cpu")
    assert cfg.name.startswith("cpu-")


def test_train_cli_accepts_the_seeds_option_names():
    from bair_world.training.train import parse_config

    cfg = parse_config([
        "--data_root", "/d", "--batch_size", "3", "--niter", "7", "--epoch_size", "11", "--tfr", "0.9",
        "--tfr_start_decay_epoch", "5", "--tfr_decay_step", "0.01", "--tfr_lower_bound", "0.2",
        "--kl_anneal_cyclical", "--kl_anneal_ratio", "0.3", "--kl_anneal_cycle", "4", "--n_past", "3",
        "--n_future", "9", "--z_dim", "5", "--g_dim", "33", "--rnn_size", "17", "--lr", "0.01", "--log_dir", "/l",
    ])
    assert (cfg.data_root, cfg.batch_size, cfg.epochs, cfg.epoch_size) == (Path("/d"), 3, 7, 11)
    assert (cfg.tfr, cfg.tfr_start_decay_epoch, cfg.tfr_decay_step, cfg.tfr_lower_bound) == (0.9, 5, 0.01, 0.2)
    assert (cfg.kl_anneal, cfg.kl_anneal_ratio, cfg.kl_anneal_cycle) == ("cyclical", 0.3, 4)
    assert (cfg.model.n_past, cfg.n_future, cfg.model.z_dim, cfg.model.g_dim, cfg.model.rnn_size) == (3, 9, 5, 33, 17)
    assert (cfg.lr, cfg.log_dir) == (0.01, Path("/l"))


def test_train_cli_explicit_options_override_the_preset():
    from bair_world.training import presets
    from bair_world.training.train import parse_config

    cfg = parse_config(["--preset", "seed", "--batch-size", "2", "--backbone", "dcgan", "--name", "x"])
    seed = presets.training_preset("seed")
    assert cfg.batch_size == 2 and cfg.model.backbone == "dcgan" and cfg.name == "x"
    assert cfg.model.z_dim == seed.model.z_dim == 64 and cfg.epochs == seed.epochs and cfg.kl_anneal == "cyclical"


@pytest.mark.parametrize("argv", [["--preset", "huge"], ["--kl-anneal", "sometimes"], ["--batch-size", "0"],
                                  ["--amp", "fp8"]])
def test_train_cli_rejects_bad_options(argv):
    from bair_world.training.train import parse_config

    with pytest.raises((SystemExit, ValueError)):
        parse_config(argv)


def test_help_can_show_an_instances_values_as_defaults(capsys):
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Outer, shown_defaults=Outer(inner=Inner(depth=9), learning_rate=0.5))
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "Step size (100% of it). (default: 0.5)" in out and "How deep the thing goes. (default: 9)" in out
    assert explicit_values(parser.parse_args([]), Outer) == {}  # shown, not applied


@pytest.mark.parametrize("preset_name", ["cpu", "seed"])
def test_train_help_shows_the_values_a_run_uses(preset_name, capsys):
    from bair_world.training import presets
    from bair_world.training.train import parse_config

    argv = ["--help"] if preset_name == "cpu" else ["--preset", preset_name, "--help"]
    with pytest.raises(SystemExit):
        parse_config(argv)
    out = " ".join(capsys.readouterr().out.split())
    cfg = presets.training_preset(preset_name)
    for option, value in [("Training epochs (the seed's --niter).", cfg.epochs), ("Adam learning rate.", cfg.lr),
                          ("Floor of the teacher-forcing ratio.", cfg.tfr_lower_bound)]:
        assert f"{option} (default: {value!r})" in out
    assert f"(default: {cfg.model.skip!r})" in out and f"(default: {cfg.tfr_start_decay_epoch!r})" in out
    preset_help = out.split("base recipe", 1)[1].split("training and model options", 1)[0]
    assert preset_help.count("(default:") == 1  # --preset's default said once


def test_a_field_of_an_unsupported_type_is_a_type_error_naming_it():
    @dataclass(frozen=True)
    class Sized:
        size: tuple[int, int] = (64, 64)

    with pytest.raises(TypeError, match="'size'"):
        add_dataclass_arguments(argparse.ArgumentParser(), Sized)
