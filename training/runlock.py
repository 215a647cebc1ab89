"""One training process per run folder: an exclusive lock file holding the owner's pid.

The lock is ``<log dir>/.<run name>.lock``, a sibling of the run folder, so it can be taken before
the folder exists (a refused run writes nothing into it). It is held with ``fcntl.flock``: the
kernel drops the lock when its process dies, so a lock file left by a killed run (its pid is
dead) is simply taken over. The pid inside only tells the user who holds it.
"""

from __future__ import annotations

from pathlib import Path

from bair_world.cli_errors import CommandError
from bair_world.pidlock import LockBusy, PidLock


class RunFolderError(CommandError, RuntimeError):
    """The run folder does not fit the request: it is in use by another process, it holds no run to
    resume, or a fresh run would write over the run it holds (the two would mix). A `CommandError`:
    the command reports it as one line (`bair_world.cli_errors`)."""


class RunFolderBusy(RunFolderError):
    """Another live process trains in the run folder; the message names the folder and its pid."""

    def __init__(self, run_dir: Path, pid: str):
        self.run_dir, self.pid = run_dir, pid
        super().__init__(f"{run_dir}: run folder is in use by another train.py (pid {pid}); "
                         f"wait for it to finish, or stop it and --resume {run_dir}")


def lock_path(run_dir: Path) -> Path:
    """Where the lock of ``run_dir`` lives: ``<parent>/.<name>.lock``."""
    return run_dir.parent / f".{run_dir.name}.lock"


class RunLock(PidLock):
    """Hold the lock of ``run_dir`` while training in it (a context manager; `bair_world.pidlock`).

    Raises on entry:
        RunFolderBusy: a live process holds the lock.
        OSError: the parent folder cannot be created or written (it names the path).
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        super().__init__(lock_path(self.run_dir))

    def __enter__(self) -> "RunLock":
        try:
            super().__enter__()
        except LockBusy as busy:
            raise RunFolderBusy(self.run_dir, busy.pid) from None
        return self


def check_run_folder(run_dir: Path, resuming: bool, config_file: str) -> None:
    """Refuse to resume from a folder without a run, or to start a fresh run over an existing one.

    Raises:
        RunFolderError: naming the folder and what to do instead.
    """
    has_run = (run_dir / config_file).is_file()
    if resuming and not has_run:
        raise RunFolderError(f"{run_dir}: not a train.py run folder (no {config_file}), nothing to resume")
    if not resuming and (has_run or (run_dir / "last").exists()):
        raise RunFolderError(f"{run_dir}: already holds a run; continue it with --resume {run_dir}, "
                             "or pick another --name")
