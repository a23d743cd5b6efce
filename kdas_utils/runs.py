"""Runs: which network to train or load for a profile, where it lives, and the ablation of arms.

The training loop itself is :mod:`kdas_utils.engine`; this module decides *which* run (the
teacher, or a student described by a :class:`StudentRecipe`), finds or resumes its checkpoints
and calls the engine. Notebooks 02 to 07 and the ``kdas`` command call these, so that a profile
means the same data, split and settings everywhere::

    from kdas_utils.config import get_profile
    from kdas_utils.runs import StudentRecipe, train_student, train_teacher
    run = train_teacher(get_profile("quick"))          # loads runs/checkpoints/teacher-quick/best.pt if present
    run.model, run.source, run.history
    student = train_student(get_profile("quick"), StudentRecipe("kdas", alpha=0.1), seed=0)


Scoring lives in :mod:`kdas_utils.evaluate`, figures in :mod:`kdas_utils.plots`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import pandas as pd
import torch
from torch import nn

from .config import Profile, data_root, runs_dir, synthetic_root, test_roots
from .data import (
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
from .data.pairs import Pair
from .distill import ALPHA, KDAS_TERMS, TAU, DistillationObjective, KDASLoss
from .engine import CheckpointError, RunLock, RunLockedError, TrainConfig, Trainer, load_checkpoint, settings_changed
from .engine.lock import LOCK_NAME, describe, read_lock
from .evaluate import score_run, teacher_summary
from .files import atomic_path, write_text
from .models import build_student, build_teacher, load_polyp_pvt, load_trained
from .models.pretrained import MissingWeightsError, describe_teacher, official_teacher_file
from .plots import plot_ablation, save_figure

if TYPE_CHECKING:
    import pandas

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


def checkpoint_dir(role: str, profile: Profile) -> Path:
    """``runs/checkpoints/<role>-<profile>``, e.g. ``runs/checkpoints/teacher-quick``."""
    return runs_dir() / "checkpoints" / f"{role}-{profile.name}"


def teacher_dir(profile: Profile, label_fraction: float = 1.0, seed: int = 0) -> Path:
    """The folder of a teacher run: ``teacher-<profile>`` for the profile's teacher (every mask, seed 0),
    ``teacher-s<seed>-<profile>`` for another seed, and ``teacher-l<fraction>-s<seed>-<profile>`` for one
    that saw the masks of ``label_fraction`` of the training frames only, those drawn from ``seed`` (the
    masks a student of the same seed sees), e.g. ``teacher-l0.25-s1-standard``."""
    if label_fraction == 1:
        return checkpoint_dir("teacher" + (f"-s{seed}" if seed else ""), profile)
    return checkpoint_dir(f"teacher-l{label_fraction:g}-s{seed}", profile)


@dataclass
class Run:
    """What :func:`train_teacher` and :func:`train_student` return.

    Attributes:
        model: the selected network, in ``eval()`` mode.
        source: ``"trained"`` (in this call), ``"checkpoint"`` (an earlier run's ``best.pt``) or
            ``"weights"`` (an official ``PolypPVT.pth``).
        path: the file the weights now come from.
        history: the epoch history (empty for ``weights``).
        steps: the step history, likewise.
    """

    model: nn.Module
    source: str
    path: Path
    history: list[dict]
    steps: list[dict]


def finished_state(out_dir: Path, epochs: int) -> dict | None:
    """``last.pt``'s state if ``out_dir`` holds a run that trained all ``epochs`` (and its
    ``best.pt``), else ``None``: an unfinished run is resumed, a finished one loaded."""
    best, last = out_dir / "best.pt", out_dir / "last.pt"
    if not (best.exists() and last.exists()):
        return None
    saved = load_checkpoint(last)
    return saved if len(saved["history"]) >= epochs else None


# Several processes working through the same runs at once (kdas study --jobs): see share_runs().
WAIT_SECONDS = 10.0  # how often a process waiting for a run folder that another one holds looks again
_sharing = False


@contextlib.contextmanager
def share_runs():
    """Work through the same runs as other processes at once (what ``kdas study --jobs`` starts: each
    process runs the same study). Inside the block, a run folder that another live process holds is
    not an error: :func:`run_ablation` first trains the runs that nobody holds and leaves the others
    to their holders (:func:`claim_runs`), then waits for those and loads them; a teacher, needed at
    once, is waited for. So each run is trained by one process, and every process ends with every
    row. This is the series' choice (two runs on one core each train more steps an hour than one run
    on both: ``benchmarks/threads.py``, docs/results.md)."""
    global _sharing
    before, _sharing = _sharing, True
    try:
        yield
    finally:
        _sharing = before


def sharing() -> bool:
    """Whether this process is inside :func:`share_runs`."""
    return _sharing


class _Busy(Exception):
    """A run folder that another process holds, left to it (``when_busy="skip"``)."""


@contextlib.contextmanager
def _holding(out_dir: Path, when_busy: str):
    """Hold ``out_dir`` (:class:`~kdas_utils.engine.RunLock`) for the block. When another live process
    holds it: ``"raise"`` its :class:`~kdas_utils.engine.RunLockedError`, ``"skip"`` raise
    :class:`_Busy`, ``"wait"`` look again every :data:`WAIT_SECONDS` until it is free."""
    waiting = False
    while True:
        try:
            lock = RunLock(out_dir).acquire()
            break
        except RunLockedError as error:
            if when_busy == "raise":
                raise
            if when_busy == "skip":
                raise _Busy(out_dir) from error
            if not waiting:
                holder = describe(read_lock(out_dir / LOCK_NAME))
                print(f"waiting for {out_dir}, which another process trains ({holder})", flush=True)
                waiting = True
            time.sleep(WAIT_SECONDS)
    try:
        yield lock
    finally:
        lock.release()


def _load_finished(out_dir: Path, saved: dict, config: TrainConfig, objective, device) -> Run:
    """The :class:`Run` of the finished run in ``out_dir`` (``saved``: its ``last.pt`` state), if it was
    made with the settings asked for."""
    changed = settings_changed(saved, config, objective)
    if changed:
        raise CheckpointError(
            f"{out_dir}: holds a finished run made with other settings ({'; '.join(changed)}); "
            f"ask for the settings it was made with, or retrain it (retrain=True, --retrain)"
        )
    best = out_dir / "best.pt"
    return Run(load_trained(best, device or "cpu"), "checkpoint", best, saved["history"], saved["steps"])


def _train_or_load(
    name: str,
    out_dir: Path,
    build,
    profile: Profile,
    objective=None,
    retrain: bool = False,
    device=None,
    augment: bool = True,
    seed: int = 0,
    when_busy: str | None = None,
    **changes,
) -> Run:
    """Load ``out_dir/best.pt`` of a finished run, resume an unfinished one, or train afresh.
    ``when_busy``: what to do when another live process holds ``out_dir`` (see :func:`_holding`);
    default ``"wait"`` inside :func:`share_runs`, else ``"raise"``."""
    when_busy = when_busy or ("wait" if _sharing else "raise")
    if when_busy not in ("raise", "skip", "wait"):
        raise ValueError(f"when_busy={when_busy!r}: choose 'raise', 'skip' or 'wait'")
    if retrain and when_busy != "raise":
        raise ValueError(f"{out_dir}: retrain while other processes share the runs would train it twice")
    config = TrainConfig.from_profile(profile, seed=seed, **changes)
    saved = None if retrain else finished_state(out_dir, config.epochs)
    if saved is not None:
        return _load_finished(out_dir, saved, config, objective, device)
    # One process per run folder, taken before any work (kdas_utils.engine.lock); under torchrun only
    # process 0 writes the folder, so only it holds it.
    main_process = int(os.environ.get("RANK", "0")) == 0
    with _holding(out_dir, when_busy) if main_process else contextlib.nullcontext():
        saved = None if retrain else finished_state(out_dir, config.epochs)
        if saved is not None:  # another process finished it while this one waited
            return _load_finished(out_dir, saved, config, objective, device)
        print(_plan_line(name, out_dir, profile, config, resume=not retrain), flush=True)
        train_set, val_set = profile_datasets(profile, augment=augment)
        torch.manual_seed(seed)
        model = build(drop_path_rate=config.drop_path_rate, pretrained=profile.pretrained)
        print(f"{name}: backbone from {model.weights_source}")
        trainer = Trainer(
            model,
            train_set,
            val_set,
            config,
            out_dir,
            objective=objective,
            device=device,
            name=name,
        )
        result = trainer.fit(resume=not retrain)
    return Run(
        load_trained(result.best_path, trainer.device), "trained", result.best_path, result.history, result.steps
    )


def _last_state(folder: Path) -> dict | None:
    """``folder/last.pt``'s state, or ``None`` if there is none or it cannot be read."""
    try:
        return load_checkpoint(folder / "last.pt")
    except CheckpointError:
        return None


def epoch_seconds(out_dir: Path, image_size: int, own: dict | None = None) -> float | None:
    """The median seconds of one epoch measured by earlier runs of this kind: the run in ``out_dir``
    itself if it has started, else the runs of the same role, arm and settings with another seed
    under ``out_dir``'s parent at ``image_size`` (their ``last.pt`` histories). ``None`` if nothing
    was measured here yet. ``own``: ``out_dir/last.pt``'s state when the caller has read it already."""
    kind = re.sub(r"-s\d+-", "-s*-", out_dir.name)  # the same role, arm and settings, any seed
    folders = [out_dir] + sorted(out_dir.parent.glob(kind))
    for folder in dict.fromkeys(folders):
        state = own if folder == out_dir and own is not None else _last_state(folder)
        if state is None:
            continue
        seconds = [h["seconds"] for h in state["history"] if "seconds" in h]
        if seconds and state["config"].get("image_size") == image_size:
            return statistics.median(seconds)
    return None


def _plan_line(name: str, out_dir: Path, profile: Profile, config: TrainConfig, resume: bool = True) -> str:
    """What is about to be trained, said before it starts: ``"teacher: training 8 epochs (quick
    profile, 128 px) into runs/checkpoints/teacher-quick; about 2 minutes"``. The time comes from
    :func:`epoch_seconds`; without a measurement yet, the epoch log lines give it. ``resume=False``
    (a retrain) starts at epoch 1 whatever ``last.pt`` holds."""
    state = _last_state(out_dir)
    done = len(state["history"]) if state is not None and resume else 0
    epochs = f"{config.epochs} epoch{'s' if config.epochs != 1 else ''}"
    verb = f"resuming at epoch {done + 1} of {config.epochs}" if done else f"training {epochs}"
    seconds = epoch_seconds(out_dir, config.image_size, own=state)
    left = config.epochs - done
    when = (
        f"about {max(1, round(seconds * left / 60))} minutes, as measured by earlier epochs here"
        if seconds
        else "each epoch's time is printed as it ends"
    )
    return (
        f"{name}: {verb} ({profile.name} profile, {config.image_size} px) into {out_dir.parent.name}/{out_dir.name}; "
        f"{when}"
    )


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
    return _train_or_load(
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


# The arms of the ablation: KDASLoss settings, or None for the student trained alone (L_seg).
ARMS: dict[str, dict | None] = {
    "no-kd": None,  # the student alone
    "at": {"at": KDAS_TERMS["at"], "sgm": None},  # + Attention-KD only
    "sgm": {"at": None, "sgm": KDAS_TERMS["sgm"]},  # + SGM only
    "kdas": dict(KDAS_TERMS),  # KDAS as the series implements it
    "released": {"at": "released", "sgm": "released", "seg_variant": "released"},  # the released code's terms
    "pixel": {"at": None, "sgm": None, "kd": "pixel"},  # classic pixel-wise KD (baseline)
}

# The TrainConfig fields that are part of a student run's identity (they give it its own folder).
RECIPE_FIELDS = ("epochs", "label_fraction")


@dataclass(frozen=True)
class StudentRecipe:
    """Who a student run is, apart from its seed: its arm and the settings that give it its own
    folder and its own ablation table. One recipe travels from ``kdas distill``'s options (or a
    notebook's parameters) to the folder, the tag and the table, so no function spells them out.

    Attributes:
        arm: a key of :data:`ARMS` (``"no-kd"``: the student alone, no teacher).
        alpha, tau: the weights of the distillation terms (:data:`~kdas_utils.distill.ALPHA`,
            :data:`~kdas_utils.distill.TAU`).
        teacher_epoch: distil from the teacher's snapshot of this epoch (:func:`teacher_snapshot`);
            ``None``: the final teacher.
        teacher_fraction: distil from a teacher that saw the masks of this share of the training
            frames only, those the student of the same seed sees (:func:`teacher_dir`); 1: the
            profile's teacher, which saw every mask.
        epochs: student epochs other than the profile's; ``None``: the profile's.
        label_fraction: the share of training frames whose masks the student sees
            (:attr:`~kdas_utils.engine.TrainConfig.label_fraction`).
        teacher_int8: the teacher's forward in int8 on the CPU
            (:func:`~kdas_utils.engine.objectives.int8_teacher`).

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


def _start_from_shorter(out_dir: Path, base_dir: Path, changes: dict) -> None:
    """A longer schedule (its own folder) starts from the profile's run of the same settings, if
    that exists: the data order is a function of (seed, epoch, sample) and the learning rate is
    constant, so its first epochs are exactly the shorter run's. Nothing is done for a cosine
    schedule, or when the longer run has started already."""
    if out_dir == base_dir or (out_dir / "last.pt").exists() or changes.get("schedule", "constant") != "constant":
        return
    if (base_dir / "last.pt").exists() and (base_dir / "best.pt").exists():
        for name in ("best.pt", "last.pt"):  # last.pt last: it is what marks the run as started
            with atomic_path(out_dir / name) as partial:
                shutil.copy2(base_dir / name, partial)


def teacher_snapshot(profile: Profile, epoch: int) -> Path:
    """``epoch-<n>.pt`` of the profile's teacher run (kept for :attr:`Profile.keep_epochs`)."""
    path = checkpoint_dir("teacher", profile) / f"epoch-{epoch}.pt"
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no teacher snapshot of epoch {epoch}; the {profile.name!r} profile keeps "
            f"epochs {list(profile.keep_epochs)} while the teacher trains (kdas train-teacher)"
        )
    return path


def _teacher_for(profile: Profile, recipe: StudentRecipe, seed: int, device, who: str) -> nn.Module:
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


def _recipe(recipe: StudentRecipe | str) -> StudentRecipe:
    """A recipe, or an arm's name for the recipe of that arm with the series' settings."""
    return StudentRecipe(recipe) if isinstance(recipe, str) else recipe


def _refuse_loose(changes: dict, where: str) -> None:
    """The run's identity belongs to its recipe: ``epochs=`` or ``label_fraction=`` among the
    TrainConfig overrides would train a run whose folder does not say so."""
    loose = [key for key in RECIPE_FIELDS if key in changes]
    if loose:
        raise TypeError(
            f"{where}: {', '.join(f'{key}=' for key in loose)} belong(s) to the run's recipe: "
            f"give StudentRecipe(..., {loose[0]}=...) (or StudentRecipe.split(changes))"
        )


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
    recipe = _recipe(recipe)
    _refuse_loose(changes, "train_student")
    objective = None
    if recipe.uses_teacher:
        if teacher is None:
            teacher = _teacher_for(profile, recipe, seed, device, f"the {recipe.arm} student")
        loss = KDASLoss(alpha=recipe.alpha, tau=recipe.tau, **ARMS[recipe.arm])
        objective = DistillationObjective(teacher, loss, recipe.teacher_int8)
    out_dir = recipe.folder(profile, seed)
    changes = recipe.config_changes() | changes
    if not retrain:
        _start_from_shorter(out_dir, recipe.but(epochs=None).folder(profile, seed), changes)
    return _train_or_load(
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


def _ablation_order(plan: dict[str, int]) -> list[tuple[int, str]]:
    """``(seed, arm)`` of ``plan`` in the order they train: seed 0 of every arm first."""
    return [(seed, arm) for seed in range(max(plan.values(), default=0)) for arm, n in plan.items() if seed < n]


def _ablation_teacher(profile: Profile, plan: dict[str, int], recipe: StudentRecipe, teacher, device):
    """``teacher``, or the recipe's teacher (:func:`_teacher_for`) when an arm of ``plan`` needs one; ``None``
    for a partial teacher (:attr:`StudentRecipe.teacher_fraction`), which is each seed's own."""
    if teacher is None and recipe.teacher_fraction == 1 and any(ARMS[arm] is not None for arm in plan):
        teacher = _teacher_for(profile, recipe, 0, device, "the ablation")
    return teacher


def claim_runs(
    profile: Profile,
    plan: dict[str, int],
    recipe: StudentRecipe = StudentRecipe(),
    teacher: nn.Module | None = None,
    device=None,
    **changes,
) -> None:
    """Inside :func:`share_runs`: train the runs of ``plan`` (as :func:`run_ablation` would) that no
    other process holds, and leave those it holds to it; finished runs are passed over. Scores nothing."""
    teacher = _ablation_teacher(profile, plan, recipe, teacher, device)
    for seed, arm in _ablation_order(plan):
        claim_run(profile, recipe.but(arm=arm), seed, teacher=teacher, device=device, **changes)


def claim_run(
    profile: Profile, recipe: StudentRecipe, seed: int, teacher: nn.Module | None = None, device=None, **changes
) -> bool:
    """Train (or load) the student of ``recipe`` and ``seed`` unless another live process holds its
    folder; ``False`` when it does (the run is left to it). Scores nothing."""
    try:
        train_student(profile, recipe, seed, teacher=teacher, device=device, when_busy="skip", **changes)
    except _Busy:
        return False
    return True


def run_ablation(
    profile: Profile,
    plan: dict[str, int],
    recipe: StudentRecipe = StudentRecipe(),
    teacher: nn.Module | None = None,
    device=None,
    csv: str | Path | None = None,
    **changes,
) -> pandas.DataFrame:
    """Train (or load) a student for each arm and seed of ``plan`` (``{arm: number of seeds}``),
    each with the settings of ``recipe`` (its arm replaced by the plan's), and score it with
    :func:`kdas_utils.evaluate.score_run`: mean Dice at 0.5 on the validation split and on every
    test set.

    Seed 0 of every arm runs first, then the further seeds, so that a run cut short still covers
    every arm. Inside :func:`share_runs`, :func:`claim_runs` trains first what no other process
    holds, then the loop waits for the others' runs. Rows are written to ``csv`` (default
    :meth:`StudentRecipe.table`) as they finish, beside the rows of other arms and seeds already there
    (a row of the same arm and seed is replaced); finished runs are loaded, not retrained, so calling
    it again continues the plan.
    The plot of this call's rows (:func:`~kdas_utils.plots.plot_ablation`) is saved beside the CSV
    under the same name. Returns the rows of this call.
    """
    _refuse_loose(changes, "run_ablation")
    if recipe.teacher_int8:
        raise ValueError("teacher_int8 trains one run in its own folder; leave it out of an ablation")
    unknown = [arm for arm in plan if arm not in ARMS]
    if unknown:
        raise ValueError(f"unknown arm(s) {unknown}; choose among {list(ARMS)}")
    csv = Path(csv) if csv else recipe.table(profile)
    splits = profile_splits(profile)
    teacher = _ablation_teacher(profile, plan, recipe, teacher, device)
    if _sharing:
        claim_runs(profile, plan, recipe, teacher, device, **changes)
    rows = []
    for seed, arm in _ablation_order(plan):
        run = train_student(profile, recipe.but(arm=arm), seed, teacher=teacher, device=device, **changes)
        rows.append({"arm": arm, "seed": seed, **score_run(run, splits, profile.image_size, device)})
        _merge_rows(csv, pd.DataFrame(rows))
    table = pd.DataFrame(rows)
    if rows:
        fig = plot_ablation(table)
        save_figure(fig, csv.stem, csv.parent)
        plt.close(fig)  # saved; a notebook shows it when it asks for it (plots.plot_ablation)
    return table


def _merge_rows(csv: Path, rows: pandas.DataFrame) -> None:
    """Write ``rows`` into ``csv``, keeping its rows of other (arm, seed) pairs; atomically."""
    if csv.exists():
        old = pd.read_csv(csv)
        keep = ~old.set_index(["arm", "seed"]).index.isin(rows.set_index(["arm", "seed"]).index)
        rows = pd.concat([old[keep], rows], ignore_index=True)
    write_csv(rows, csv)


def write_csv(table: pandas.DataFrame, path: Path) -> Path:
    """``table`` to ``path`` (no index), whole or not at all: written under a name of this process's
    own, then renamed (processes that share the runs, :func:`share_runs`, write the same tables)."""
    with atomic_path(path, per_process=True) as partial:
        table.to_csv(partial, index=False)
    return path


def finished_plan(profile: Profile, recipe: StudentRecipe = StudentRecipe()) -> dict[str, int]:
    """``{arm: n}`` for the arms whose seeds ``0 .. n-1`` have all finished training (``n >= 1``)
    with the settings of ``recipe`` (its arm aside): the plan that scores what is done and trains
    nothing (``kdas distill --ablation finished``)."""
    plan = {}
    for arm in ARMS:
        seeds = 0
        while finished_state(recipe.but(arm=arm).folder(profile, seeds), recipe.epochs or profile.epochs) is not None:
            seeds += 1
        if seeds:
            plan[arm] = seeds
    return plan
