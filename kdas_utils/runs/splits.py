"""The data of a profile: its folder, the training pairs, the validation split carved from them and
the test sets (seen and unseen), and the datasets and figure samples built on them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..config import Profile, data_root, synthetic_root, test_roots
from ..data import (
    DatasetError,
    PolypDataset,
    domain,
    eval_transforms,
    find_dataset,
    find_pairs,
    find_test_roots,
    make_synthetic,
    train_transforms,
    train_val_split,
)
from ..data.pairs import Pair

VAL_FRACTION = 0.1
SPLIT_SEED = 0


@dataclass
class Splits:
    """The pairs a profile trains, selects and tests on.

    Attributes:
        root: the PraNet-layout folder they come from.
        train, val: the training pairs and the validation split carved from them.
        test: ``{test set name: pairs}``; used by evaluation only, never for selection. The data
            root's sets first, then those of the further test roots.
        domains: ``{test set name: "seen" | "unseen"}`` (:func:`kdas_utils.data.domain`).
    """

    root: Path
    train: list[Pair]
    val: list[Pair]
    test: dict[str, list[Pair]]
    domains: dict[str, str] = dataclasses.field(default_factory=dict)

    def of_domain(self, which: str) -> list[str]:
        """The names of the test sets of one domain (``"seen"`` or ``"unseen"``), in order."""
        return [name for name in self.test if self.domains.get(name, domain(name)) == which]


def profile_root(profile: Profile) -> Path:
    """The data folder of a profile: the synthetic set (written on first use) or the real data."""
    if profile.data == "synthetic":
        return make_synthetic(synthetic_root(), seed=0, n_train=profile.synthetic_train, n_test=profile.synthetic_test)
    root = data_root()
    if not (root / "TrainDataset").is_dir():
        raise DatasetError(
            f"{root}: no TrainDataset/ folder, and the {profile.name!r} profile trains on the real data. "
            f"Put Kvasir-SEG + CVC-ClinicDB there in the PraNet layout (see notebook 01) or set "
            f"KDAS_DATA_ROOT; or choose KDAS_PROFILE=quick for the synthetic set."
        )
    return root


def profile_splits(
    profile: Profile, val_fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED, extra_roots=None
) -> Splits:
    """Find and check the pairs of ``profile`` and carve the validation split.

    ``extra_roots``: further test roots (:func:`kdas_utils.data.find_test_roots`), whose sets are
    scored beside the data root's; ``None`` takes ``$KDAS_TEST_ROOTS``
    (:func:`kdas_utils.config.test_roots`) for the profiles on the real data and none for the
    synthetic ``quick`` profile, whose own ``Synthetic-Shift`` set is its unseen domain."""
    root = profile_root(profile)
    found = find_dataset(root)
    train, val = train_val_split(found["train"], val_fraction, seed)
    if extra_roots is None:
        extra_roots = test_roots() if profile.data == "real" else []
    own = {name: root / "TestDataset" / name for name in found["test"]}
    extra = find_test_roots(extra_roots, taken=own)
    test = found["test"] | {name: find_pairs(folder) for name, folder in extra.items()}
    domains = {name: domain(name, extra_root=name in extra) for name in test}
    return Splits(root=root, train=train, val=val, test=test, domains=domains)


def profile_datasets(profile: Profile, augment: bool = True, splits: Splits | None = None, cache: bool = True):
    """``(train_set, val_set)`` at the profile's image size; augmentation on the first only.
    With ``cache``, frames are decoded and resized once (see :class:`PolypDataset`)."""
    splits = splits or profile_splits(profile)
    size = profile.image_size if cache else None
    return (
        PolypDataset(splits.train, train_transforms(profile.image_size, augment=augment), cache_size=size),
        PolypDataset(splits.val, eval_transforms(profile.image_size), cache_size=size),
    )


def figure_samples(profile: Profile, n: int = 3, frames: str | None = None) -> tuple[str, list[dict]]:
    """``(source, items)``: ``n`` evenly spaced evaluation items for figures, at the profile's size.

    Args:
        frames: ``None`` (default) takes the profile's own data (:attr:`Profile.data`: the synthetic
            frames of ``quick``, the domain its teacher was trained on), the first of its test sets;
            ``"synthetic"`` or ``"real"`` asks for one of them by name (``"real"``: the real Kvasir test
            set under ``KDAS_DATA_ROOT``; a :class:`~kdas_utils.data.DatasetError` says how to get it).
    """
    frames = frames or profile.data
    if frames not in ("synthetic", "real"):
        raise ValueError(f"frames={frames!r}: choose 'synthetic' or 'real' (or None for the profile's own data)")
    if frames == profile.data:
        source, pairs = next(iter(profile_splits(profile).test.items()))
    elif frames == "real":
        real = data_root() / "TestDataset" / "Kvasir"
        if not (real / "images").is_dir():
            raise DatasetError(
                f"{real}: no real Kvasir test set; point KDAS_DATA_ROOT at a PraNet-layout folder (notebook 01) "
                f"or set FRAMES = 'synthetic'"
            )
        source, pairs = "Kvasir", find_pairs(real)
    else:
        source, pairs = next(iter(profile_splits(profile.replace(data="synthetic")).test.items()))
    dataset = PolypDataset(pairs, eval_transforms(profile.image_size))
    picks = [round(i * (len(dataset) - 1) / max(n - 1, 1)) for i in range(n)]
    return source, [dataset[i] for i in picks]
