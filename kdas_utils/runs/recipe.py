"""Who a student run is: :class:`StudentRecipe` (arm, alpha, tau, teacher, epochs, share of masks),
which gives the run its folder, its tag and its ablation table."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..config import Profile, runs_dir
from ..kdas import ALPHA, ARMS, TAU
from .store import checkpoint_dir

# The TrainConfig fields that are part of a student run's identity (they give it its own folder).
RECIPE_FIELDS = ("epochs", "label_fraction")


@dataclass(frozen=True)
class StudentRecipe:
    """Who a student run is, apart from its seed: its arm and the settings that give it its own
    folder and its own ablation table. One recipe travels from ``kdas distill``'s options (or a
    notebook's parameters) to the folder, the tag and the table, so no function spells them out.

    Attributes:
        arm: a key of :data:`ARMS` (``"no-kd"``: the student alone, no teacher).
        alpha, tau: the weights of the distillation terms (:data:`~kdas_utils.kdas.ALPHA`,
            :data:`~kdas_utils.kdas.TAU`).
        teacher_epoch: distil from the teacher's snapshot of this epoch (:func:`teacher_snapshot`);
            ``None``: the final teacher.
        teacher_fraction: distil from a teacher that saw the masks of this share of the training
            frames only, those the student of the same seed sees (:func:`teacher_dir`); 1: the
            profile's teacher, which saw every mask.
        epochs: student epochs other than the profile's; ``None``: the profile's.
        label_fraction: the share of training frames whose masks the student sees
            (:attr:`~kdas_utils.engine.TrainConfig.label_fraction`).
        teacher_int8: the teacher's forward in int8 on the CPU
            (:func:`~kdas_utils.engine.int8_teacher`).

    Example::

        recipe = StudentRecipe("pixel", alpha=0.1, label_fraction=0.25)
        recipe.folder(profile, seed=0).name   # 'student-pixel-a0.1-l0.25-s0-standard'
    """

    arm: str = "kdas"
    alpha: float = ALPHA
    tau: float = TAU
    teacher_epoch: int | None = None
    epochs: int | None = None
    label_fraction: float = 1.0
    teacher_int8: bool = False
    teacher_fraction: float = 1.0

    def __post_init__(self):
        if self.arm not in ARMS:
            raise ValueError(f"arm={self.arm!r}: choose one of {list(ARMS)}")
        if self.teacher_fraction < 1 and self.teacher_epoch is not None:
            raise ValueError("teacher_fraction and teacher_epoch: the partial teacher keeps no snapshots; give one")

    @classmethod
    def split(cls, changes: dict, **fields) -> tuple[StudentRecipe, dict]:
        """``(recipe, rest)``: the recipe of ``fields`` with the :data:`RECIPE_FIELDS` of
        ``changes`` (TrainConfig overrides such as ``kdas study --epochs``) taken into it, and the
        other overrides. A field given in ``fields`` wins over the same key of ``changes``."""
        taken = {key: changes[key] for key in RECIPE_FIELDS if key in changes}
        rest = {key: value for key, value in changes.items() if key not in RECIPE_FIELDS}
        return cls(**(taken | fields)), rest

    @property
    def uses_teacher(self) -> bool:
        """Whether the arm distils from a teacher (every arm but ``no-kd``)."""
        return ARMS[self.arm] is not None

    def but(self, **changes) -> StudentRecipe:
        """A copy with some fields changed, e.g. ``recipe.but(arm="no-kd")``."""
        return dataclasses.replace(self, **changes)

    def tag(self, profile: Profile, teacher: bool | None = None) -> str:
        """What tells the run (and its ablation table) apart from the profile's own: ``""`` for
        KDAS's ``alpha`` and ``tau``, the final teacher, the profile's epochs and every mask; else
        the pieces that differ, e.g. ``"-a0.1"``, ``"-t1"``, ``"-te3"`` (the teacher of epoch 3),
        ``"-tl0.25"`` (the teacher that saw a quarter of the masks), ``"-int8"``, ``"-e40"`` (40 epochs,
        more than the profile's; fewer epochs are the start of the profile's own run), ``"-l0.25"`` (a
        quarter of the masks). The teacher's pieces appear only where a teacher is used (``teacher``,
        default :attr:`uses_teacher`)."""
        tag = ""
        if self.uses_teacher if teacher is None else teacher:
            tag += (f"-a{self.alpha:g}" if self.alpha != ALPHA else "") + (f"-t{self.tau:g}" if self.tau != TAU else "")
            tag += f"-te{self.teacher_epoch}" if self.teacher_epoch is not None else ""
            tag += f"-tl{self.teacher_fraction:g}" if self.teacher_fraction != 1 else ""
            tag += "-int8" if self.teacher_int8 else ""
        tag += f"-e{self.epochs}" if self.epochs is not None and self.epochs > profile.epochs else ""
        return tag + (f"-l{self.label_fraction:g}" if self.label_fraction != 1 else "")

    def folder(self, profile: Profile, seed: int) -> Path:
        """``runs/checkpoints/student-<arm><tag>-s<seed>-<profile>``, e.g. ``student-kdas-s0-standard``,
        ``student-pixel-a0.1-te3-s0-standard``, ``student-no-kd-e40-s0-standard``,
        ``student-no-kd-l0.25-s1-standard``."""
        return checkpoint_dir(f"student-{self.arm}{self.tag(profile)}-s{seed}", profile)

    def table(self, profile: Profile) -> Path:
        """``runs/ablation-<profile><tag>.csv``, the ablation table of the arms with these settings
        (its tag as for a distilled arm), e.g. ``ablation-standard-a0.1.csv``."""
        return runs_dir() / f"ablation-{profile.name}{self.tag(profile, teacher=True)}.csv"

    def config_changes(self) -> dict:
        """The :class:`~kdas_utils.engine.TrainConfig` fields the recipe sets (those that differ
        from the profile's)."""
        return ({"epochs": self.epochs} if self.epochs is not None else {}) | (
            {"label_fraction": self.label_fraction} if self.label_fraction != 1 else {}
        )
