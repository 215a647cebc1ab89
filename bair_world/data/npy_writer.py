"""Writing a new ``.npy`` file row by row with ordinary writes, its disk space reserved up front.

A memory-mapped new file (``np.lib.format.open_memmap(mode="w+")``) is sparse: its blocks are
allocated when a page is first written back, and on a full disk that write kills the process with
SIGBUS, without a message. `NpyRowWriter` writes the ``.npy`` header, then reserves the whole file
(`reserve`: a free-space check, then ``os.posix_fallocate`` where the OS has it) and fills rows with
``os.pwrite``. A full disk (or ``ulimit -f``) is an OSError naming the file and the bytes it needs,
raised when the file is opened, before any work; a filesystem that cannot reserve (no fallocate)
still reports a full disk as an OSError from the write itself, never as a signal.
"""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import numpy as np

#: posix_fallocate's answers meaning "this filesystem cannot reserve": ordinary writes report a full disk
_NOT_SUPPORTED = {errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


def free_bytes(fd: int) -> int:
    """Bytes an unprivileged writer may still allocate on the filesystem of the open file ``fd``."""
    st = os.fstatvfs(fd)
    return st.f_bavail * st.f_frsize


def _no_room(code: int, nbytes: int, free: int | None, name: Path) -> OSError:
    """The OSError of a reservation that failed: errno ``code``'s meaning, the bytes needed, the free ones."""
    shown = "" if free is None else f", {free:,} free on its disk"
    return OSError(code, f"{os.strerror(code)} (reserving {nbytes:,} bytes{shown})", str(name))


def reserve(fd: int, nbytes: int, name: Path) -> None:
    """Allocate the first ``nbytes`` of the open file ``fd`` (its size becomes ``nbytes``).

    More than the filesystem has free is refused before anything is allocated (glibc emulates
    ``posix_fallocate`` by writing every block where the filesystem lacks it: it would fill the
    disk first). Without ``posix_fallocate`` the file is only extended (sparse); writes then report
    a full disk as OSError.

    Raises:
        OSError: naming ``name``: ENOSPC with the bytes needed and free, EFBIG under ``ulimit -f``.
    """
    free = free_bytes(fd)
    if nbytes > free:
        raise _no_room(errno.ENOSPC, nbytes, free, name)
    if nbytes > 0 and hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, 0, nbytes)
            return
        except OSError as e:
            if e.errno not in _NOT_SUPPORTED:
                raise _no_room(e.errno or errno.EIO, nbytes, free, name) from None
    try:
        os.ftruncate(fd, nbytes)
    except OSError as e:
        raise _no_room(e.errno or errno.EIO, nbytes, free, name) from None


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """The bytes of a version 1.0 ``.npy`` header for a C-order array (what ``np.save`` writes first)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                 "fortran_order": False, "shape": tuple(int(n) for n in shape)})
    return buffer.getvalue()


def _pwrite_all(fd: int, data: memoryview, offset: int, name: Path) -> None:
    """Write all of ``data`` at ``offset`` (pwrite may write less than asked)."""
    while len(data):
        try:
            written = os.pwrite(fd, data, offset)
        except OSError as e:
            raise OSError(e.errno, e.strerror or str(e), str(name)) from None
        if written == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(name))
        data, offset = data[written:], offset + written


class NpyRowWriter:
    """A new ``.npy`` file of ``dtype`` and ``shape`` at ``path``, its space reserved, filled one row
    (index along the first axis) at a time; rows never written read as zeros. `close` when done.

    Args:
        path: the file to create (must not exist).
        dtype, shape: the array's.
        name: the path errors name (e.g. where the file will end up after a staging rename); default ``path``.

    Raises:
        OSError: naming ``name``: no room for the whole file (`reserve`), or the header not writable.
    """

    def __init__(self, path: str | Path, dtype, shape: tuple[int, ...], name: str | Path | None = None):
        self.path, self.name = Path(path), Path(name or path)
        self.dtype, self.shape = np.dtype(dtype), tuple(int(n) for n in shape)
        self.row_shape = self.shape[1:]
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        header = _npy_header(self.dtype, self.shape)
        self.offset = len(header)
        self.nbytes = self.offset + self.shape[0] * self.row_bytes  # the whole file
        self.fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            reserve(self.fd, self.nbytes, self.name)
            _pwrite_all(self.fd, memoryview(header), 0, self.name)
        except BaseException:
            self.close(sync=False)
            raise

    def write_row(self, index: int, value) -> None:
        """Store ``value`` (cast to the dtype, as array assignment would) as row ``index``.

        Raises:
            ValueError: ``value`` is not of the row shape; IndexError: ``index`` out of range.
        """
        if self.fd is None:
            raise ValueError(f"{self.name}: write_row after close")
        if not 0 <= index < self.shape[0]:
            raise IndexError(f"{self.name}: row {index} out of range [0, {self.shape[0]})")
        row = np.ascontiguousarray(np.asarray(value).astype(self.dtype, copy=False))
        if row.shape != self.row_shape:
            raise ValueError(f"{self.name}: a row must have shape {self.row_shape}, got {row.shape}")
        _pwrite_all(self.fd, memoryview(row).cast("B"), self.offset + index * self.row_bytes, self.name)

    def close(self, sync: bool = True) -> None:
        """Close the file; with ``sync``, first fsync it and check that it holds all its bytes
        (OSError naming ``name`` otherwise). A second call does nothing."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            if sync:
                size = os.fstat(fd).st_size
                if size != self.nbytes:
                    raise OSError(errno.EIO, f"write cut short ({size:,} of {self.nbytes:,} bytes on disk)",
                                  str(self.name))
                try:
                    os.fsync(fd)
                except OSError as e:  # delayed allocation's full disk shows up here on some filesystems
                    raise OSError(e.errno, e.strerror or str(e), str(self.name)) from None
        finally:
            os.close(fd)
