"""Every third-party module the installed code imports is a declared dependency in pyproject.toml."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO = Path(__file__).resolve().parents[1]
INSTALLED = ("bair_world", "training", "envs")  # the folders pyproject installs


def _imported_top_level_modules() -> set[str]:
    names = set()
    for folder in INSTALLED:
        for file in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text(), str(file))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"bair_world", "__future__"}


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_direct_imports_are_declared():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {_normalised(re.split(r"[<>=!~ \[;]", req, maxsplit=1)[0]) for req in project["dependencies"]}
    providers = packages_distributions()
    missing = {}
    for module in sorted(_imported_top_level_modules()):
        dists = {_normalised(d) for d in providers.get(module, [module])}
        if not dists & declared:
            missing[module] = sorted(dists)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
