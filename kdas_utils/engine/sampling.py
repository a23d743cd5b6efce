"""The data order of a run: which sample, with which augmentation seed, at every step.

Both depend only on (seed, epoch, sample), so a run resumed in the middle of an epoch sees the very
batches an uninterrupted run sees, with any number of data-loader workers or processes.
"""

from __future__ import annotations

import math

import numpy as np
from torch.utils.data import Dataset, Sampler


def _seed(*keys: int) -> int:
    """A 32-bit seed that depends on every key (NumPy's SeedSequence mixes them)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


class EpochSampler(Sampler):
    """Keys ``(index, augmentation_seed)`` in an order fixed by ``(seed, epoch)``.

    Both the shuffle and each sample's augmentation seed depend only on the seed, the epoch
    and the sample, so a run resumed at item ``start`` sees exactly what an uninterrupted
    run sees from there on, with any number of data-loader workers.

    With ``world`` processes, global batch ``k`` is items ``k B W`` to ``(k + 1) B W`` of the order
    (``B`` = ``batch_size`` per process) and process ``rank`` takes its ``rank``-th slice of ``B``;
    the order is first padded by repeating its start so that every process gets full batches
    (no sample is dropped; a few are seen twice). ``start`` counts this process's items.
    """

    def __init__(
        self,
        n: int,
        seed: int,
        epoch: int,
        start: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world: int = 1,
        batch_size: int = 1,
    ):
        self.n, self.seed, self.epoch, self.start, self.shuffle = n, seed, epoch, start, shuffle
        self.rank, self.world, self.batch_size = rank, world, batch_size

    def _order(self) -> np.ndarray:
        order = (
            np.random.default_rng(_seed(self.seed, self.epoch)).permutation(self.n)
            if self.shuffle
            else np.arange(self.n)
        )
        if self.world == 1:
            return order
        chunk = self.batch_size * self.world
        padded = np.resize(order, math.ceil(self.n / chunk) * chunk)  # np.resize repeats from the start
        return padded.reshape(-1, self.world, self.batch_size)[:, self.rank].reshape(-1)

    def __iter__(self):
        for index in self._order()[self.start :]:
            yield int(index), _seed(self.seed, self.epoch, int(index), 1)

    def __len__(self) -> int:
        return max(0, len(self._order()) - self.start)


class SeededItems(Dataset):
    """A view of a dataset with an albumentations ``transform`` whose items are fetched by
    :class:`EpochSampler` keys: the transform is re-seeded with the key's seed first."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        index, seed = key
        self.dataset.transform.set_random_seed(seed)
        return self.dataset[index]
