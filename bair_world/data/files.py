"""What every reader and writer of a data file shares: `require_regular_file`, and the small compressed
arrays stored beside a sequence's frames (``labels.npz``, ``flow.npz``): `npz_bytes`, `read_npz`."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

import numpy as np

from bair_world.data.errors import DataError


def require_regular_file(path: Path, what: str) -> None:
    """DataError naming ``path`` unless it is a regular file (a FIFO or device would block or never end)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DataError(path, f"missing {what}") from None
    except OSError as exc:
        raise DataError(path, f"unreadable {what} ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode) else "a device or socket"
        raise DataError(path, f"{what} is {kind}, not a regular file")


def npz_bytes(key: str, array: np.ndarray) -> bytes:
    """``array`` as the bytes of a compressed ``.npz`` file holding it under ``key`` (for `io.write_verified`)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{key: array})
    return buffer.getvalue()


def read_npz(path: Path, key: str, what: str, max_bytes: int, typical_bytes: int) -> np.ndarray:
    """The array ``key`` of the ``.npz`` file ``path``, refused before anything is decompressed when the
    archive would unpack to more than ``max_bytes`` (a zip bomb).

    Args:
        path: the file (must be a regular file).
        key: the array's name inside the archive.
        what: the file in words for the messages, e.g. ``"labels file"``.
        max_bytes: bound on the archive's decompressed size.
        typical_bytes: what a 30-step sequence's file unpacks to (said in the message).

    Raises:
        DataError: naming ``path``: not a regular file, too large, unreadable, or without ``key``.
    """
    require_regular_file(path, what)
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > max_bytes:
            raise DataError(path, f"decompresses to {unpacked:,} bytes; a 30-step sequence's {what} takes "
                                  f"{typical_bytes:,} (limit {max_bytes:,})")
        with np.load(path, allow_pickle=False) as npz:
            return npz[key]
    except DataError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(path, f"unreadable {what} ({type(exc).__name__}: {exc})") from None
