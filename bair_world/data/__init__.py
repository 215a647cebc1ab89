"""BAIR data: the processed folder layout, the original TFRecords, the synthetic pushing world's writer."""

from bair_world.data.batch import ACTION_DIM, COND_DIM, IMAGE_SIZE, POSITION_DIM, Batch, collate, cond_of
from bair_world.data.errors import DataError

__all__ = ["ACTION_DIM", "COND_DIM", "IMAGE_SIZE", "POSITION_DIM", "Batch", "collate", "cond_of", "DataError"]


def __getattr__(name):
    # Lazy so that `bair_world.data` imports fast and without circular imports.
    if name == "BairFolderDataset":
        from bair_world.data.bair_folder import BairFolderDataset

        return BairFolderDataset
    if name == "PackedDataset":
        from bair_world.data.packed import PackedDataset

        return PackedDataset
    if name == "open_dataset":
        from bair_world.data.open import open_dataset

        return open_dataset
    raise AttributeError(name)
