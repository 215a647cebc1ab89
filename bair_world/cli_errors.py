"""The one error mapper of every command: a user's mistake is one line on stderr, exit status 2.

`run_command` runs a command's body and maps what a user can cause (`USER_ERRORS`) to that line, so no
command repeats the block. The line names the argument, file or folder the error names:

- `DataError`, `CheckpointError` (ValueErrors whose messages name the file), a ValueError of an
  argument check, an IndexError of an index the user gave (``--index``), `CommandError` (a command's
  own refusal; the training run folder's `RunFolderError` is one): ``<prog>: error: <message>``;
- `OSError` from the system (a full disk, a read-only folder): ``<prog>: error: cannot write <file>:
  <reason>``, the file the error names, else the command's ``output``; a missing file
  (FileNotFoundError naming it): ``<prog>: error: <file>: <reason>``; one a command raised with its
  own message (``FileExistsError("<dest>: already exists ...")``): ``<prog>: error: <message>``.

Torch-free (``bair-world --help`` imports it through `bair_world.cli`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

#: Exit status of a user's mistake (argparse's own).
USAGE_STATUS = 2


class CommandError(Exception):
    """A command refuses what it was asked (the message names the argument, file or folder)."""


#: What `run_command` maps to one line and exit status 2 (DataError and CheckpointError are ValueErrors).
USER_ERRORS = (CommandError, ValueError, IndexError, OSError)


def error_line(prog: str, error: BaseException, output: str | Path | None = None) -> str:
    """The one line of ``error``, a `USER_ERRORS` instance, for command ``prog``."""
    if isinstance(error, FileNotFoundError) and error.filename is not None:  # a file to read is missing
        return f"{prog}: error: {error.filename}: {error.strerror}"
    if isinstance(error, OSError) and error.strerror is not None:  # the system's error, about a file
        where = error.filename if error.filename is not None else output
        return f"{prog}: error: cannot write{'' if where is None else f' {where}'}: {error.strerror}"
    return f"{prog}: error: {error}"


def run_command(prog: str, body: Callable[[], int | None],
                output: str | Path | Callable[[], str | Path | None] | None = None) -> int:
    """``body()``'s exit status (None: 0); a `USER_ERRORS` instance is `error_line` on stderr and `USAGE_STATUS`.

    Args:
        prog: the command as the user typed it (``bair-world data synth``, ``train.py``).
        body: the command's work.
        output: what the command writes, named when an OSError names no file; or a function giving it,
            called then (after the command filled in its default).
    """
    try:
        return int(body() or 0)
    except USER_ERRORS as error:
        print(error_line(prog, error, output() if callable(output) else output), file=sys.stderr)
        return USAGE_STATUS
