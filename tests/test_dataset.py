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


def test_cache_gives_the_same_items_and_decodes_once(small_synthetic, monkeypatch):
    from kdas_utils.data import dataset as dataset_module
    from kdas_utils.data import train_transforms

    pairs = find_pairs(small_synthetic / "TrainDataset")[:3]
    plain = PolypDataset(pairs, train_transforms(64))
    cached = PolypDataset(pairs, train_transforms(64), cache_size=64)
    reads = []
    original = dataset_module.read_image
    monkeypatch.setattr(dataset_module, "read_image", lambda path: reads.append(path) or original(path))
    for epoch in range(2):
        for i in range(3):
            plain.transform.set_random_seed(epoch * 10 + i)
            cached.transform.set_random_seed(epoch * 10 + i)
            a, b = plain[i], cached[i]
            assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    assert len(reads) == 6 + 3  # the plain dataset reads every time, the cached one once per frame
