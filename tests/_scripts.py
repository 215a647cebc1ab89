"""Import the repository's runnable scripts (examples/, benchmarks/) in tests: they are not a package."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def load_script(folder: str, name: str):
    """Import ``<repo>/<folder>/<name>.py`` as a module (registered as ``<folder>_<name>``)."""
    spec = importlib.util.spec_from_file_location(f"{folder}_{name}", REPO / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
