"""Generate an argparse command line from config dataclasses.

Every field of a config dataclass becomes an option: ``--kebab-case`` (and its ``--snake_case``
spelling, so the seed's option names keep working), with the field's docstring (the string literal
written under the field) as help text. Booleans become ``--flag/--no-flag``; ``Literal``
fields get choices; ``Optional[X]`` accepts ``none``; ``int``, ``float``, ``str`` and ``Path``
parse as themselves (other types are a TypeError naming the field). Nested dataclass fields are flattened (their fields get options of their own, and names
must be unique across the whole tree).

Options default to "not given" so a caller can layer them: defaults < preset < explicit options::

    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, TrainConfig, aliases=[Alias("--niter", "epochs")])
    ns = parser.parse_args(argv)
    cfg = apply_overrides(preset_cfg, explicit_values(ns, TrainConfig))
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Alias:
    """An extra option string for a field, e.g. the seed's ``--niter`` for ``epochs``.

    With ``const`` set the alias takes no value and stores ``const`` (the seed's
    ``--kl_anneal_cyclical`` flag maps to ``kl_anneal="cyclical"``).
    """

    option: str
    """The option string, with its dashes ("--niter")."""
    field: str
    """Name of the dataclass field it sets."""
    const: Any = None
    """If not None, the alias is a flag that stores this value."""


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass (and its bases): {field name: docstring}."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0].body  # the class body statements
        for stmt, nxt in zip(body, body[1:]):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _scalar_parser(tp: Any, optional: bool, name: str):
    """A function str -> value for a scalar annotation."""
    if tp is Path:
        base = Path
    elif tp in (int, float, str):
        base = tp
    else:
        raise TypeError(f"configcli: field {name!r} has unsupported type {tp!r}")

    def parse(text: str):
        if optional and text.lower() in ("none", "null"):
            return None
        return base(text)

    parse.__name__ = getattr(base, "__name__", "value")  # argparse names the type in its errors
    return parse


def _walk_fields(cls: type):
    """Yield (field, resolved type, docstring) over a dataclass tree, nested dataclasses flattened."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _walk_fields(tp)
        else:
            yield f, tp, docs.get(f.name, "")


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _flat_values(cfg: Any) -> dict[str, Any]:
    """{field name: value} over a dataclass instance's tree, nested dataclasses flattened."""
    values = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            values.update(_flat_values(value))
        else:
            values[f.name] = value
    return values


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, aliases: list[Alias] = (),
                            title: str | None = None, shown_defaults: Any = None) -> argparse.ArgumentParser:
    """Add one option per field of ``cls`` (nested dataclasses flattened) to ``parser``.

    Options default to ``argparse.SUPPRESS``: a field absent from the parsed namespace was not
    given on the command line (see `explicit_values`). Each help text ends in "(default: X)", X
    taken from ``shown_defaults`` (an instance of ``cls``, e.g. the preset a run without the option
    uses) or else from the dataclass's own defaults. Returns the parser.

    Raises:
        ValueError: two fields in the tree share a name, or an alias names no field.
        TypeError: a field's annotation has no command-line form.
    """
    group = parser.add_argument_group(title or f"{cls.__name__} options")
    seen: dict[str, None] = {}
    extra: dict[str, list[Alias]] = {}
    for alias in aliases:
        extra.setdefault(alias.field, []).append(alias)
    shown = _flat_values(shown_defaults) if shown_defaults is not None else {}
    for f, tp, doc in _walk_fields(cls):
        if f.name in seen:
            raise ValueError(f"configcli: field name {f.name!r} occurs twice in {cls.__name__}'s tree")
        seen[f.name] = None
        names = [f"--{f.name.replace('_', '-')}"]
        if "_" in f.name:
            names.append(f"--{f.name}")
        default = shown[f.name] if f.name in shown else _default_of(f)
        help_text = _help_text(doc or f.name, default)
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        base, optional = _unwrap_optional(tp)
        origin = typing.get_origin(base)
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is typing.Literal:
            choices = typing.get_args(base)
            kwargs["type"] = _scalar_parser(type(choices[0]), optional, f.name)
            kwargs["choices"] = list(choices) + ([None] if optional else [])
            kwargs["metavar"] = "{" + ",".join(map(str, choices)) + "}"
        else:
            kwargs["type"] = _scalar_parser(base, optional, f.name)
        group.add_argument(*names, **kwargs)
        for alias in extra.pop(f.name, []):
            if alias.const is not None:
                group.add_argument(alias.option, dest=f.name, action="store_const", const=alias.const,
                                   default=argparse.SUPPRESS, help=f"same as --{names[0][2:]} {alias.const}")
            else:
                alias_kwargs = {k: v for k, v in kwargs.items() if k != "help"}
                group.add_argument(alias.option, help=f"alias of {names[0]}", **alias_kwargs)
    if extra:
        raise ValueError(f"configcli: aliases name unknown fields {sorted(extra)}")
    return parser


def _help_text(doc: str, default: Any) -> str:
    """An option's help: the field's docstring and "(default: X)" (argparse's % escaped)."""
    return f"{doc} (default: {default!r})".replace("%", "%%")


def show_defaults(parser: argparse.ArgumentParser, cls: type, shown: Any) -> None:
    """Make the "(default: X)" of ``cls``'s options in ``parser``'s help show ``shown``'s values (an
    instance of ``cls``, e.g. another preset) instead of those `add_dataclass_arguments` showed."""
    values = _flat_values(shown)
    docs = {f.name: doc or f.name for f, _, doc in _walk_fields(cls)}
    for action in parser._actions:  # argparse keeps each option's help on its Action
        if action.dest in values and action.help and action.help.startswith(docs[action.dest].replace("%", "%%")):
            action.help = _help_text(docs[action.dest], values[action.dest])


def explicit_values(namespace: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls``'s tree that were given on the command line: {field name: value}."""
    names = {f.name for f, _, _ in _walk_fields(cls)}
    return {name: value for name, value in vars(namespace).items() if name in names}


def apply_overrides(cfg: Any, overrides: dict[str, Any]) -> Any:
    """A copy of dataclass ``cfg`` with fields (searched through nested dataclasses) replaced.

    Raises:
        ValueError: an override names no field of the tree.
    """
    remaining = dict(overrides)
    result = _apply(cfg, remaining)
    if remaining:
        raise ValueError(f"unknown config fields {sorted(remaining)} for {type(cfg).__name__}")
    return result


def _apply(cfg: Any, remaining: dict[str, Any]) -> Any:
    changes = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            new = _apply(value, remaining)
            if new is not value:
                changes[f.name] = new
        elif f.name in remaining:
            changes[f.name] = remaining.pop(f.name)
    return dataclasses.replace(cfg, **changes) if changes else cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    """JSON-friendly nested dict of a config (Paths as strings)."""
    def convert(v):
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, (list, tuple)):
            return [convert(x) for x in v]
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        return v
    return convert(dataclasses.asdict(cfg))
