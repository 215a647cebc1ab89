"""An exclusive lock file holding its owner's pid (``fcntl.flock``), removed when released.

The kernel drops a ``flock`` when its process dies, so the file a killed process leaves behind is
simply taken over by the next one (and removed when that one releases it); `stale_lock_files`
finds such leftovers for cleanup. The pid inside only tells a refused caller who holds the lock.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


class LockBusy(RuntimeError):
    """Another live process holds the lock; ``pid`` is what its file says (or "unknown")."""

    def __init__(self, path: Path, pid: str):
        self.path, self.pid = path, pid
        super().__init__(f"{path}: locked by pid {pid}")


class PidLock:
    """Hold ``path`` exclusively (a context manager); ``wait`` blocks for it, else a held lock
    raises `LockBusy` on entry. The parent folder is created; an OSError names the path."""

    def __init__(self, path: str | Path, wait: bool = False):
        self.path, self.wait = Path(path), wait
        self._fd: int | None = None

    def __enter__(self) -> "PidLock":
        import fcntl  # POSIX only, imported here so the module imports everywhere

        parent = self.path.parent
        if parent.exists() and not parent.is_dir():  # mkdir would only say "File exists"
            raise NotADirectoryError(errno.ENOTDIR, "is a file, not a folder", str(parent))
        parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise LockBusy(self.path, holder) from None
            # The holder may have released and unlinked the file between our open and flock: then
            # we locked an orphaned inode, and must retry on the path's current file.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # unlink while still holding it (see __enter__)
        finally:
            os.close(self._fd)
            self._fd = None


def stale_lock_files(folder: str | Path, pattern: str = ".*.lock") -> list[Path]:
    """Lock files under ``folder`` (matching ``pattern``) that no live process holds: left by killed
    processes. Each is removed while briefly held, so a lock taken meanwhile is never deleted."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for path in folder.glob(pattern):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            with PidLock(path):
                removed.append(path)  # __exit__ unlinks it
        except (LockBusy, OSError):
            continue
    return removed
