"""The "still being written" marker of a dataset folder.

A writer (``bair-world data convert``, ``bair-world data synth``) puts ``<root>/.incomplete.json``
in place before it writes anything and removes it as its very last step, so a folder whose writer
was killed says so: every reader (`list_sequences`, hence training, evaluation, the envs, and
``bair-world data check``) refuses it with one line naming the folder and the command that
completes it (both writers resume where they stopped).

The marker also records what makes the dataset (``params``: seed, counts, length, source), and a
resume compares it with the new command (`check_resume`): a different command is refused instead of
mixing two datasets in one folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bair_world.data.errors import DataError
from bair_world.io import atomic_write_bytes

MARKER = ".incomplete.json"


def mark_incomplete(root: str | Path, command: str, params: dict[str, Any] | None = None) -> None:
    """Record (atomically) that ``command`` is writing ``root``; call before writing any data, after
    `check_resume`. ``params`` (JSON-able) is what makes the dataset, compared on a resume."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    marker = {"command": command} if params is None else {"command": command, "params": params}
    atomic_write_bytes(root / MARKER, (json.dumps(marker) + "\n").encode())


def check_resume(root: str | Path, command: str, params: dict[str, Any]) -> None:
    """Refuse to resume an interrupted dataset with another command.

    Raises:
        DataError: ``root`` holds the marker of an interrupted run whose ``params`` differ from
            ``params`` (or an unreadable marker); the line names both commands and how to start over.
            A marker without params (written by an older bair-world) is not compared.
    """
    marker = Path(root) / MARKER
    if not os.path.lexists(marker):
        return
    try:
        old = json.loads(marker.read_text()) if marker.is_file() else None
    except (OSError, ValueError, RecursionError):
        old = None
    if not isinstance(old, dict):
        raise DataError(marker, f"unreadable marker of an interrupted run; delete {root} to start over")
    if "params" not in old:
        return
    old_params = old["params"] if isinstance(old["params"], dict) else {}
    new_params = json.loads(json.dumps(params))  # compare as JSON (tuples as lists)
    if old_params != new_params:
        diff = ", ".join(f"{k} {old_params.get(k)!r} -> {new_params.get(k)!r}"
                         for k in sorted(set(old_params) | set(new_params)) if old_params.get(k) != new_params.get(k))
        raise DataError(root, f"holds an interrupted `{old.get('command')}`; this command differs ({diff}) and would mix "
                              f"two datasets: run that command to complete it, or delete {root} to start over")


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
