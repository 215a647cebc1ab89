"""Shared pytest fixtures (plain helper functions are in helpers.py)."""

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # also for fixtures of a wider scope, set up before `one_torch_thread`


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test starts on one torch thread. The suite's networks are tiny: a second intra-op thread
    gains little on 2 idle cores and costs up to 13x on a busy machine (each op waits for the slower
    thread: a tiny goal-env step took 61 ms on 2 threads, 5 ms on 1, with a training run beside it);
    and commands or examples a test runs in-process set their own count, which must not leak into the
    next test."""
    torch.set_num_threads(1)


REAL_BAIR = Path(__file__).resolve().parents[1].parent / "shared" / "bair_real"


@pytest.fixture
def real_bair_root() -> Path:
    """`../shared/bair_real` (one real BAIR sequence in test/); skips when absent."""
    if not (REAL_BAIR / "test").is_dir():
        pytest.skip("../shared/bair_real is absent (a user's clone has no ../shared)")
    return REAL_BAIR


@pytest.fixture(scope="module")
def data_root(request, tmp_path_factory) -> Path:
    """Random sequences in the BAIR folder layout (`helpers.write_folder_dataset`), one dataset per
    test module; the module's ``DATA_COUNTS`` ({split: sequences}) sizes it (default 4 train, 2 validate)."""
    from helpers import write_folder_dataset

    counts = getattr(request.module, "DATA_COUNTS", {"train": 4, "validate": 2})
    return write_folder_dataset(tmp_path_factory.mktemp("bair"), counts)
