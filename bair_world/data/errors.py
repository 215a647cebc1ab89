"""Errors raised for bad data: always name the file and what is wrong with it."""

from pathlib import Path


class DataError(ValueError):
    """A dataset file or folder is missing, malformed or inconsistent.

    Args:
        path: the offending file or folder.
        problem: what is wrong, in words a user can act on.
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
