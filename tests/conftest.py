"""Shared pytest fixtures."""

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
