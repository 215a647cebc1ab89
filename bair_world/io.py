"""Atomic writes: a file or folder appears whole or not at all.

Files go through a temporary sibling, then ``os.replace``. Temporaries are named
``.<name>.tmp-<pid>`` (``.<stem>.tmp-<pid>-<hex><suffix>`` where the writer picks the format by
suffix); a writer killed mid-write leaves one behind, which `remove_stale_temporaries` deletes once
its pid no longer runs (`bair_world.stale`). Whole folders are written complete into a temporary
sibling and swapped in by `install_directory`.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from bair_world.stale import is_stale


@contextmanager
def replacing(path: Path, *, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; it replaces ``path`` when the block ends and
    is removed if the block raises. ``keep_suffix`` names it ``.<stem>.tmp-<pid>-<hex><suffix>``
    (for writers that choose the format by suffix), else ``.<name>.tmp-<pid>``."""
    path = Path(path)
    if keep_suffix:
        tmp = path.parent / f".{path.stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix.lower()}"
    else:
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary sibling (fsynced) and ``os.replace``.

    Raises:
        OSError: with ``filename`` set to ``path`` (a full disk's error does not name the file itself);
            the temporary sibling is removed.
    """
    try:
        with replacing(path) as tmp, open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        if e.filename is None:
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the ``.<name>.tmp-<pid>`` files `atomic_write_bytes` left behind when its process was
    killed (their pid no longer runs); returns what was removed."""
    removed = [tmp for tmp in Path(folder).glob(".*.tmp-*") if tmp.is_file() and is_stale(tmp)]
    for tmp in removed:
        tmp.unlink(missing_ok=True)
    return removed


def atomic_write_json(path: Path, data: Any) -> None:
    """`atomic_write_bytes` of ``data`` as indented JSON with a final newline."""
    atomic_write_bytes(Path(path), (json.dumps(data, indent=2) + "\n").encode())


# --- folders ------------------------------------------------------------------------------------

def fsync_directory(path: Path) -> None:
    """fsync a directory's entries where the OS allows it (silently nothing where it does not)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return rc == 0


def previous_of(path: Path) -> Path:
    """The ``.<name>.previous`` backup `install_directory` moves an old folder to by default."""
    return path.parent / f".{path.name}.previous"


def install_directory(tmp: str | Path, path: str | Path, *, backup: Path | None = None,
                      sync: bool = True) -> Path:
    """Swap the complete directory ``tmp`` in as ``path`` (a sibling), replacing any old ``path``.

    An atomic exchange where the OS has one; else two renames through ``backup`` (default
    `previous_of` ``path``), so a crash leaves the old or the new directory, never a mix. ``sync``
    fsyncs ``tmp`` before and the parent after the swap.
    """
    tmp, path = Path(tmp), Path(path)
    if sync:
        fsync_directory(tmp)
    if path.exists() and _exchange(tmp, path):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old directory
    else:
        backup = previous_of(path) if backup is None else Path(backup)
        if path.exists():  # complete, so an older backup is stale; else the backup is all we have
            if backup.exists():
                shutil.rmtree(backup)
            os.replace(path, backup)
        os.replace(tmp, path)
        shutil.rmtree(backup, ignore_errors=True)
    if sync:
        fsync_directory(path.parent)
    return path
