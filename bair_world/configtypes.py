"""Type checks of config dataclass fields against their annotations.

Configs also come from JSON files (a checkpoint's config.json, a run's train_config.json), where
``"residual": "no"`` or ``"g_dim": "32"`` would otherwise load and misbehave later. Accepted:
``bool`` only for bool fields; integers (not bools) for ``int``; integers or floats for ``float``;
``str`` or a path for ``Path``; a listed value for ``Literal``; None where the type is Optional.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import os
import types
import typing
from pathlib import Path
from typing import Any


def is_int(value: Any) -> bool:
    """An integer (Python or numpy), not a bool (``True`` is an ``int`` to Python, not to a config)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An integer or a float (Python or numpy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _accepts(tp: Any, value: Any) -> tuple[bool, str]:
    """(value fits tp, a description of tp for the message)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        results = [_accepts(arg, value) for arg in typing.get_args(tp)]
        return any(ok for ok, _ in results), " or ".join(what for _, what in results)
    if tp is type(None):
        return value is None, "none"
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        return value in choices and not isinstance(value, bool), f"one of {list(choices)}"
    if tp is bool:
        return isinstance(value, bool), "true or false"
    if tp is int:
        return is_int(value), "an integer"
    if tp is float:
        return is_number(value), "a number"
    if tp is str:
        return isinstance(value, str), "a string"
    if tp is Path:
        return isinstance(value, (str, os.PathLike)), "a path"
    if dataclasses.is_dataclass(tp):
        return isinstance(value, tp), tp.__name__
    return True, str(tp)  # an annotation this module does not know: left to the config itself


def type_problems(cfg: Any) -> list[str]:
    """One message per field of dataclass instance ``cfg`` whose value does not fit its annotation."""
    problems = []
    hints = _hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        ok, what = _accepts(hints[f.name], value)
        if not ok:
            problems.append(f"{f.name} must be {what}, got {value!r}")
    return problems
