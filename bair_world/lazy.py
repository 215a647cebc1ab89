"""Package attributes imported on first use (PEP 562), so that importing a package's light parts
(configs, a command's ``--help``) does not load torch or stable-baselines3."""

from __future__ import annotations

import importlib
from typing import Callable


def lazy_exports(package: str, names: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The ``(__getattr__, __dir__)`` pair of ``package`` that imports ``names[attr]`` (a submodule
    name) when ``attr`` is first asked for."""

    def getattr_(name: str):
        if name in names:
            return getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(names))

    return getattr_, dir_
