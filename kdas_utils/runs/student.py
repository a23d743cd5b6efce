"""A student run: its frozen teacher, its objective, and training or loading it from the store."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..config import Profile
from ..engine import int8_teacher
from ..kdas import ARMS, DistillationObjective, KDASLoss
from ..models import build_student, load_trained
from ..models.pretrained import MissingWeightsError, official_teacher_file
from .recipe import RECIPE_FIELDS, StudentRecipe
from .store import Run, checkpoint_dir, finished_state, start_from_shorter, teacher_dir, teacher_snapshot, train_or_load
from .teacher import train_teacher


def teacher_for(profile: Profile, recipe: StudentRecipe, seed: int, device, who: str) -> nn.Module:
    """The frozen teacher a student of ``recipe`` and ``seed`` learns from: the snapshot of
    ``recipe.teacher_epoch``, the partial teacher of ``recipe.teacher_fraction`` and ``seed``, else the
    profile's teacher; a teacher that is missing is trained first, and said so before it starts."""
    if recipe.teacher_epoch:
        return load_trained(teacher_snapshot(profile, recipe.teacher_epoch), device or "cpu")
    if recipe.teacher_fraction < 1:
        folder = teacher_dir(profile, recipe.teacher_fraction, seed)
        if finished_state(folder, profile.teacher_epochs) is None:
            print(
                f"{who} learns from a teacher that saw {recipe.teacher_fraction:.0%} of the masks, not trained yet: "
                f"training it first (kdas train-teacher --profile {profile.name} --label-fraction "
                f"{recipe.teacher_fraction:g} --seed {seed})",
                flush=True,
            )
        return train_teacher(profile, device=device, seed=seed, label_fraction=recipe.teacher_fraction).model

    try:
        official = official_teacher_file(profile)
    except MissingWeightsError:
        official = None  # train_teacher raises the error that says how to fetch it
    folder = checkpoint_dir("teacher", profile)
    if official is None and finished_state(folder, profile.teacher_epochs) is None:
        print(
            f"{who} learns from the {profile.name} teacher, which is not trained yet: training it first "
            f"(what `kdas train-teacher --profile {profile.name}` does)",
            flush=True,
        )
    return train_teacher(profile, device=device).model


def trained_checkpoints(profile: Profile) -> dict[str, Path]:
    """``{label: file}`` of the profile's three networks of the evaluation table (teacher,
    the student trained alone, the KDAS student, seed 0), for those that exist; load each with
    :func:`kdas_utils.models.load_network`. The teacher is the official ``PolypPVT.pth`` where the
    profile distils from it, else its ``best.pt``. A run still training has a ``best.pt``
    already: its best epoch so far."""
    try:
        official = official_teacher_file(profile)
    except MissingWeightsError:  # colab before `kdas prepare-weights polyp-pvt`: no teacher yet
        official = None
    candidates = {
        "teacher": official or checkpoint_dir("teacher", profile) / "best.pt",
        "student alone": StudentRecipe("no-kd").folder(profile, 0) / "best.pt",
        "KDAS student": StudentRecipe("kdas").folder(profile, 0) / "best.pt",
    }
    return {label: path for label, path in candidates.items() if path.exists()}


def as_recipe(recipe: StudentRecipe | str) -> StudentRecipe:
    """A recipe, or an arm's name for the recipe of that arm with the series' settings."""
    return StudentRecipe(recipe) if isinstance(recipe, str) else recipe


def refuse_loose(changes: dict, where: str) -> None:
    """The run's identity belongs to its recipe: ``epochs=`` or ``label_fraction=`` among the
    TrainConfig overrides would train a run whose folder does not say so."""
    loose = [key for key in RECIPE_FIELDS if key in changes]
    if loose:
        raise TypeError(
            f"{where}: {', '.join(f'{key}=' for key in loose)} belong(s) to the run's recipe: "
            f"give StudentRecipe(..., {loose[0]}=...) (or StudentRecipe.split(changes))"
        )


def distillation_objective(recipe: StudentRecipe, teacher, seed: int) -> DistillationObjective:
    """The frozen ``teacher`` and the recipe's :class:`~kdas_utils.kdas.KDASLoss`, whose learned parts (the
    covariance SGM's 1x1 projection) start from ``seed``: the same run starts from the same weights whatever
    the process did before (a process that trains runs one after another, side by side, drew them from
    wherever its random state happened to be, and its KDAS runs moved by up to 0.04 Dice between clean runs)."""
    with torch.random.fork_rng(devices=[]):  # leaves the caller's random state as it was
        torch.manual_seed(seed)
        loss = KDASLoss(alpha=recipe.alpha, tau=recipe.tau, **ARMS[recipe.arm])
    return DistillationObjective(int8_teacher(teacher) if recipe.teacher_int8 else teacher, loss)


def train_student(
    profile: Profile,
    recipe: StudentRecipe | str = StudentRecipe(),
    seed: int = 0,
    teacher: nn.Module | None = None,
    retrain: bool = False,
    device=None,
    augment: bool = True,
    when_busy: str | None = None,
    **changes,
) -> Run:
    """The student (PVTv2-B0) of ``recipe`` for ``profile``: loaded if a finished run exists in the
    recipe's folder (:meth:`StudentRecipe.folder`), else trained (an unfinished one is resumed).

    Args:
        recipe: the run's arm and settings; an arm's name (e.g. ``"kdas"``, ``"no-kd"``) stands for
            ``StudentRecipe(arm)``, the series' settings.
        seed: seeds the initial weights, the data order and the masks kept (``label_fraction``).
        teacher: the frozen teacher; ``None`` takes :func:`train_teacher`'s for the profile (or
            its snapshot of ``recipe.teacher_epoch``, or the partial teacher of
            ``recipe.teacher_fraction`` and ``seed``). Unused by ``no-kd``.
        changes: other :class:`~kdas_utils.engine.TrainConfig` fields (e.g. ``progress=False``); the
            recipe's fields (``epochs``, ``label_fraction``) are given in the recipe.
        retrain, device, augment, when_busy: as for :func:`train_teacher`; ``when_busy="skip"``
            also exists here (:func:`claim_runs`).
    """
    recipe = as_recipe(recipe)
    refuse_loose(changes, "train_student")
    objective = None
    if recipe.uses_teacher:
        if teacher is None:
            teacher = teacher_for(profile, recipe, seed, device, f"the {recipe.arm} student")
        objective = distillation_objective(recipe, teacher, seed)
    out_dir = recipe.folder(profile, seed)
    changes = recipe.config_changes() | changes
    if not retrain:
        start_from_shorter(out_dir, recipe.but(epochs=None).folder(profile, seed), changes)
    return train_or_load(
        out_dir.name.removesuffix(f"-{profile.name}"),
        out_dir,
        build_student,
        profile,
        objective=objective,
        retrain=retrain,
        device=device,
        augment=augment,
        seed=seed,
        when_busy=when_busy,
        **changes,
    )
