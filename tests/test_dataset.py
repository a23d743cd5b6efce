import pytest
import torch
from torch.utils.data import DataLoader

from kdas_utils.data import DatasetError, PolypDataset, eval_transforms, find_pairs, train_val_split


def test_split_is_deterministic_disjoint_and_complete(small_synthetic):
    pairs = find_pairs(small_synthetic / "TrainDataset")
    train, val = train_val_split(pairs, 0.25, seed=1)
    assert (len(train), len(val)) == (18, 6)
    assert sorted(train + val) == pairs and not set(train) & set(val)
    assert train_val_split(pairs, 0.25, seed=1) == (train, val)
    assert train_val_split(pairs, 0.25, seed=2)[1] != val


def test_split_rejects_bad_fraction(small_synthetic):
    with pytest.raises(ValueError, match="val_fraction=1.5"):
        train_val_split(find_pairs(small_synthetic / "TrainDataset"), 1.5)


def test_empty_dataset_is_an_error():
    with pytest.raises(DatasetError, match="no pairs"):
        PolypDataset([], eval_transforms(32))


def test_batches_from_a_loader(small_synthetic):
    dataset = PolypDataset(find_pairs(small_synthetic / "TestDataset" / "Synthetic"), eval_transforms(64))
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert batch["image"].shape == (4, 3, 64, 64) and batch["mask"].shape == (4, 1, 64, 64)
    assert batch["image"].dtype == torch.float32 and len(batch["name"]) == 4
