"""The "still being written" marker of a dataset folder.

A writer (``bair-world data convert``, ``bair-world data synth``) puts ``<root>/.incomplete.json``
in place before it writes anything and removes it as its very last step, so a folder whose writer
was killed says so: every reader (`list_sequences`, hence training, evaluation, the envs, and
``bair-world data check``) refuses it with one line naming the folder and the command that
completes it (both writers resume where they stopped).
"""

from __future__ import annotations

import json
from pathlib import Path

from bair_world.data.errors import DataError
from bair_world.io import atomic_write_bytes

MARKER = ".incomplete.json"


def mark_incomplete(root: str | Path, command: str) -> None:
    """Record (atomically) that ``command`` is writing ``root``; call before writing any data."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(root / MARKER, (json.dumps({"command": command}) + "\n").encode())


def mark_complete(root: str | Path) -> None:
    """Remove the marker: every file of the dataset is written (call last)."""
    (Path(root) / MARKER).unlink(missing_ok=True)


def incomplete_problem(root: str | Path) -> DataError | None:
    """The error to report if ``root`` is still marked incomplete, else None."""
    marker = Path(root) / MARKER
    if not marker.is_file():
        return None
    try:
        command = json.loads(marker.read_text()).get("command") or "its writer"
    except (OSError, ValueError, AttributeError):
        command = "its writer"
    return DataError(root, f"incomplete dataset: `{command}` was interrupted before it finished "
                           f"({MARKER} is still there); run it again to complete the dataset")


def require_complete(root: str | Path) -> None:
    """Raise the `incomplete_problem` of ``root``, if any."""
    problem = incomplete_problem(root)
    if problem is not None:
        raise problem
