"""Temporaries of atomic writes: their one naming scheme (`temp_sibling`) and which belong to dead writers.

Every atomic write (a file, a checkpoint, a pack, a sequence folder, a bundle) goes through a
temporary sibling ``.<name>.tmp-<pid>-<hex>[<suffix>]``, named after the writing process. A
temporary whose process still runs belongs to a save in progress (possibly another process's) and
must be left alone; one whose process is gone is garbage. (Older versions also named sequence and
cache staging folders ``.<name>.partial-*``, without a pid; their cleanups still find those.)
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def temp_sibling(path: Path, suffix: str = "") -> Path:
    """The temporary a writer of ``path`` fills before renaming it into place:
    ``.<name>.tmp-<pid>-<8 hex><suffix>`` beside ``path`` (nothing is created)."""
    path = Path(path)
    return path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}"


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
    """The pid in a `temp_sibling` name (``.<name>.tmp-<pid>[-...]``), None if the name has none."""
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
