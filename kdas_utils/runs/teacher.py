"""The teacher of a profile: the official Polyp-PVT weights where the profile takes them, else a run
of the store (trained, resumed or loaded), and its summary."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import Profile
from ..evaluate import teacher_summary
from ..files import write_text
from ..models import build_teacher, load_polyp_pvt
from ..models.pretrained import describe_teacher, official_teacher_file
from .splits import profile_splits
from .store import Run, teacher_dir, train_or_load


def train_teacher(
    profile: Profile,
    retrain: bool = False,
    weights: str | Path | None = None,
    device=None,
    augment: bool = True,
    seed: int = 0,
    when_busy: str | None = None,
    label_fraction: float = 1.0,
    **changes,
) -> Run:
    """The Polyp-PVT teacher for ``profile``: loaded if it exists, else trained.

    Args:
        profile: the profile (data, size, epochs, ...).
        retrain: train afresh even when a finished run exists. Without it, a finished run's
            ``best.pt`` is loaded and an unfinished one (``last.pt``) is resumed.
        weights: an official ``PolypPVT.pth``: loaded instead of training. Without it, the ``colab``
            profile takes ``KDAS_WEIGHTS_DIR/PolypPVT.pth`` (``kdas prepare-weights polyp-pvt``), and
            ``paper`` does when it is there and ``retrain`` is not asked for
            (:func:`kdas_utils.models.pretrained.official_teacher_file`).
        device: see :func:`kdas_utils.engine.select_device`.
        augment: albumentations augmentation on the training set.
        seed: seeds the initial weights and the data order.
        when_busy: when another live process holds the run's folder: ``"raise"`` (its
            :class:`~kdas_utils.engine.RunLockedError`; the default outside :func:`share_runs`) or
            ``"wait"`` until it is free, then load or resume the run (the default inside).
        label_fraction: the share of training frames whose masks the teacher sees (drawn from
            ``seed``, as for a student: :class:`~kdas_utils.data.PartialLabels`); below 1 it is a
            teacher of its own (:func:`teacher_dir`), never the official one: a reader who has only
            that share of the masks and no outside teacher (this series' study, ``kdas study --step budget``).
        changes: :class:`~kdas_utils.engine.TrainConfig` fields to override (e.g. ``epochs=3``).
    """
    if label_fraction < 1 and weights is not None:
        raise ValueError("weights= loads the official teacher, which saw every mask; leave out label_fraction")
    if label_fraction == 1 and weights is None and not (retrain and profile.official_teacher == "official if prepared"):
        weights = official_teacher_file(profile)  # the prepared official teacher, or None: train one
    if weights is not None:
        model = build_teacher()
        print(load_polyp_pvt(model, weights))
        model.weights_source = describe_teacher(Path(weights))
        return Run(model.eval(), "weights", Path(weights), [], [])
    changes = {"epochs": profile.teacher_epochs, "keep_epochs": profile.keep_epochs} | changes
    if label_fraction < 1:
        changes |= {"label_fraction": label_fraction, "keep_epochs": ()}
    folder = teacher_dir(profile, label_fraction, seed)
    return train_or_load(
        folder.name.removesuffix(f"-{profile.name}"),
        folder,
        build_teacher,
        profile,
        retrain=retrain,
        device=device,
        augment=augment,
        seed=seed,
        when_busy=when_busy,
        **changes,
    )


def summarize_teacher(profile: Profile, run: Run, device=None, label_fraction: float = 1.0, seed: int = 0) -> dict:
    """The teacher's summary (:func:`~kdas_utils.evaluate.teacher_summary`: its epochs and mean Dice
    on the validation split and every test set), written to ``summary.json`` in its checkpoint folder
    when the run was trained here (not for an official ``PolypPVT.pth``); what ``kdas train-teacher``
    prints. Returns the summary."""
    summary = teacher_summary(profile, run, profile_splits(profile), device)
    if run.source != "weights":
        write_text(teacher_dir(profile, label_fraction, seed) / "summary.json", json.dumps(summary, indent=2))
    return summary
