"""Atomic writes: a file appears whole or not at all (a temporary sibling, then ``os.replace``).

Temporaries are named ``.<name>.tmp-<pid>``; a writer killed mid-write leaves one behind, which
`remove_stale_temporaries` deletes once its pid no longer runs (`bair_world.stale`). Whole folders
are swapped in by `bair_world.checkpoint.install_directory`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bair_world.stale import is_stale


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary sibling and ``os.replace``.

    Raises:
        OSError: with ``filename`` set to ``path`` (a full disk's error does not name the file itself);
            the temporary sibling is removed.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:
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
