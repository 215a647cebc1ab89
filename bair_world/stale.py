"""Temporaries left by killed writers: ``.<name>.tmp-<pid>[-<suffix>]`` siblings whose pid is dead.

Atomic writes go through such a temporary, named after the writing process. A temporary whose
process still runs belongs to a save in progress (possibly another process's) and must be left
alone; one whose process is gone is garbage.
"""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (this process counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def writer_pid(tmp: Path) -> int | None:
    """The pid in a ``.<name>.tmp-<pid>[-<suffix>]`` name, None if the name has none."""
    _, sep, rest = tmp.name.rpartition(".tmp-")
    pid = rest.split("-")[0]
    return int(pid) if sep and pid.isdigit() else None


def is_stale(tmp: Path, own_too: bool = False) -> bool:
    """A temporary whose writer is dead (or, with ``own_too``, this very process: a save that
    starts again in the same process replaces its own leftovers)."""
    pid = writer_pid(tmp)
    if pid is None:
        return False
    return (own_too and pid == os.getpid()) or not pid_alive(pid)
