"""Atomic writes: a file or folder appears whole or not at all.

Files go through a temporary sibling, then ``os.replace``. Temporaries are named by
`temp_sibling` (``.<name>.tmp-<pid>-<hex>``; ``.<stem>.tmp-<pid>-<hex><suffix>``
where the writer picks the format by suffix); a writer killed mid-write leaves one behind, which
`remove_stale_temporaries` deletes once its pid no longer runs (`is_stale`: a temporary whose process still runs belongs to a write in
progress, possibly another process's, and is left alone). Whole folders are written complete into a temporary
sibling and swapped in by `install_directory`; a reader that must see one version of several files
in such a folder reads them through `read_directory`.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

T = TypeVar("T")


@contextmanager
def replacing(path: Path, *, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; it replaces ``path`` when the block ends and
    is removed if the block raises. ``keep_suffix`` names it ``.<stem>.tmp-<pid>-<hex><suffix>``
    (for writers that choose the format by suffix), else ``.<name>.tmp-<pid>-<hex>``."""
    path = Path(path)
    tmp = temp_sibling(path.with_name(path.stem), path.suffix.lower()) if keep_suffix else temp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Write ``data`` to ``path`` via a temporary sibling and ``os.replace``, verified first.

    The temporary is read back and compared with ``data`` before the rename, so a write cut short
    (a full disk, ``ulimit -f``, a writer that swallows its flush error) never installs a truncated
    file. ``sync`` fsyncs it (skip it for files inside a staging folder that is synced as a whole).

    Raises:
        OSError: with ``filename`` set to ``path`` (a full disk's error does not name the file itself);
            the temporary sibling is removed.
    """
    try:
        with replacing(path) as tmp:
            write_verified(tmp, data, sync=sync, name=path)
    except OSError as e:
        if e.filename is None:
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise


def write_verified(path: Path, data: bytes, *, sync: bool = False, name: Path | None = None) -> None:
    """Write ``data`` to ``path`` in place and read it back (OSError naming ``name`` or ``path`` if it
    does not hold exactly ``data``): for files inside a staging folder that is renamed in as a whole."""
    data = bytes(data)
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        if sync:
            os.fsync(f.fileno())
    verify_file(path, data, name=name)


def verify_file(path: Path, data: bytes, *, name: Path | None = None) -> None:
    """Raise OSError (naming ``name`` or ``path``) unless the file ``path`` holds exactly ``data``."""
    with open(path, "rb") as f:
        written = f.read(len(data) + 1)
    if written != data:
        raise OSError(errno.EIO, f"write cut short ({len(written)} of {len(data)} bytes on disk)",
                      str(name or path))


def current_umask() -> int:
    """The process's umask (from /proc where it is shown: setting and restoring it races with threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normal_mode(path: Path) -> None:
    """Give the folder ``path`` the mode a plain ``mkdir`` gets under the caller's umask (staging
    folders from `tempfile.mkdtemp` are 0700, and that mode would survive the rename)."""
    os.chmod(path, 0o777 & ~current_umask())


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


def remove_stale_temporaries(folder: Path, *, folders: bool = False) -> list[Path]:
    """Delete the ``.<name>.tmp-<pid>-*`` files `atomic_write_bytes` left behind when its process was
    killed (their pid no longer runs), and with ``folders`` also staging folders so named; returns
    what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = [tmp for tmp in folder.glob(".*.tmp-*")
               if (tmp.is_file() or (folders and tmp.is_dir() and not tmp.is_symlink())) and is_stale(tmp)]
    for tmp in removed:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    return removed


def size_of(paths: list[Path]) -> int:
    """Bytes held by the files and folders ``paths`` (what removing them frees); call before removing."""
    total = 0
    for path in paths:
        files = [path] if not path.is_dir() else [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
        for file in files:
            try:
                total += file.lstat().st_size
            except OSError:
                pass
    return total


def freed_line(what: str, paths: list[Path], nbytes: int) -> str:
    """The one line saying what a cleanup removed: "removed 2 <what> (3.4 MB): <the first 3 paths> ..."."""
    return f"removed {len(paths)} {what} ({nbytes / 1e6:.1f} MB): " + ", ".join(str(p) for p in paths[:3]) + \
        (" ..." if len(paths) > 3 else "")


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
    normal_mode(tmp)  # a mkdtemp staging folder is 0700; installed folders get mkdir's mode
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


class DirectoryReplaced(OSError):
    """`read_directory` found the folder replaced during every attempt."""


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of ``path``, None if it is gone."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def read_directory(locate: Callable[[], Path], read: Callable[[Path], T], *,
                   retry_on: tuple[type[BaseException], ...] = (OSError,), attempts: int = 8,
                   release: Callable[[T], None] | None = None) -> T:
    """``read(folder)`` with every file it reads from one version of ``folder = locate()``, a folder
    that writers replace whole with `install_directory` (e.g. a checkpoint a training run saves again).

    Such a folder is never changed in place: a new complete one is swapped in and the old one deleted,
    so a folder is at its path during one unbroken interval. ``read`` runs while the folder is held
    open (its inode number cannot be reused meanwhile) and counts only if the path still names that
    folder afterwards; otherwise (a swap happened: ``read`` may have mixed two versions, or failed
    with one of ``retry_on`` on a file of the next version or a deleted one) it runs again, and a
    result so discarded is handed to ``release`` (e.g. to close the files it opened).

    Raises:
        DirectoryReplaced: naming the folder, replaced during each of ``attempts`` reads.
        Whatever ``read`` raised when no swap happened.
    """
    folder = None
    for attempt in range(attempts):
        folder = Path(locate())
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:  # swapped away between locate and open
            continue
        try:
            held = os.fstat(fd)
            try:
                result = read(folder)
            except retry_on:
                if _identity(folder) == (held.st_dev, held.st_ino):
                    raise
            else:
                if _identity(folder) == (held.st_dev, held.st_ino):
                    return result
                if release is not None:
                    release(result)
        finally:
            os.close(fd)
        time.sleep(0.005 * (attempt + 1))  # let the writer finish its swap
    raise DirectoryReplaced(errno.EAGAIN, f"replaced by a writer during each of {attempts} reads", str(folder))
