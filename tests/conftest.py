"""Shared pytest fixtures (plain helper functions are in helpers.py)."""

from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)

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
