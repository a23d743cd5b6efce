"""Profiles and paths: the one place where the series' settings are chosen.

A *profile* bundles everything that scales a notebook from a laptop lesson to the paper's
experiment. Every notebook's parameters cell calls :func:`get_profile`, which reads the
``KDAS_PROFILE`` environment variable (``quick`` | ``standard`` | ``colab`` | ``paper``). Without
it, ``colab`` is chosen on a CUDA machine that has the real data and ``quick`` otherwise.

Paths come from environment variables too, so that the same notebook runs on a laptop,
on Colab, on Binder and in CI:

======================  ==========================================  ===============================
variable                meaning                                     default
======================  ==========================================  ===============================
``KDAS_PROFILE``        profile name                                ``colab`` with CUDA + data, else ``quick``
``KDAS_HOME``           project folder (holds ``data/``, ``runs/``)  found by walking up from the cwd
``KDAS_DATA_ROOT``      real data, PraNet layout                    ``$KDAS_HOME/data/polyp``
``KDAS_TEST_ROOTS``     further test roots (e.g. unseen hospitals),  none
                        separated by ``os.pathsep`` (``:``)
``KDAS_SYNTH_ROOT``     the synthetic dataset                       ``$KDAS_HOME/data/synthetic``
``KDAS_RUNS_DIR``       executed notebooks, figures, checkpoints     ``$KDAS_HOME/runs``
``KDAS_WEIGHTS_DIR``    pretrained backbones, official teacher      ``$KDAS_HOME/data/weights``
``KDAS_DOWNLOAD_ROOT``  downloaded archives (``downloads/``) and    ``$KDAS_HOME/data``
                        unpacked releases (``raw/``)
======================  ==========================================  ===============================

The repository's public address is :data:`REPOSITORY`, written here once: the notebooks' badges
and setup cells and the README use it, and ``tests/test_repository_address.py`` checks that they agree.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch

# The series' public home (this series' choice). Badges, the Colab setup cells' ``git clone`` and the
# Binder links in notebooks/*.ipynb and README.md spell it out; tests/test_repository_address.py keeps
# them equal to it. A fork changes it here, then in those files (the test names every place that differs).
REPOSITORY = "https://github.com/kdas-notebooks/kdas-notebooks"

PROFILE_NAMES = ("quick", "standard", "colab", "paper")
# Where a profile's teacher comes from (see Profile.official_teacher).
TEACHER_SOURCES = ("train", "official if prepared", "official")


@dataclass(frozen=True)
class Profile:
    """Everything a learner may scale, in one immutable record.

    Attributes:
        name: ``quick``, ``standard``, ``colab`` or ``paper``.
        data: ``"synthetic"`` (the embedded default, made on the fly) or ``"real"``
            (Kvasir-SEG + CVC-ClinicDB in the PraNet layout under ``KDAS_DATA_ROOT``).
        image_size: training and evaluation size in pixels (square, multiple of 32).
        batch_size: images per optimiser step.
        epochs: passes over the training set (the students').
        teacher_epochs: passes over the training set for the teacher, which is trained longer
            than its students so that it has something to teach.
        max_steps_per_epoch: cap on steps per epoch (``None``: the whole set).
        multi_scale: the paper's 0.75 / 1 / 1.25 multi-scale training.
        num_workers: data-loader worker processes.
        synthetic_train: frames in the synthetic training set.
        synthetic_test: frames in each synthetic test set.
        drop_path_rate: stochastic depth of both backbones while training (the released code's 0.1).
        keep_epochs: teacher epochs whose weights are kept beside ``best.pt`` (``epoch-<n>.pt``),
            for distilling from teachers of different strength.
        pretrained: start both backbones from ImageNet weights (PVTv2 release files or timm's, see
            :mod:`kdas_utils.models.pretrained`), as Polyp-PVT and KDAS do; ``False`` trains them from
            random weights. A profile that asks for them never falls back to random weights.
        lr: AdamW's learning rate for teacher and students (``None``: the paper's 1e-4).
        official_teacher: where the teacher comes from: ``"train"`` (trained by this series),
            ``"official if prepared"`` (the official Polyp-PVT checkpoint when ``kdas prepare-weights
            polyp-pvt`` has put it in ``KDAS_WEIGHTS_DIR``, else trained), or ``"official"`` (that
            checkpoint, never trained here; a clear error says how to fetch it when it is missing).
    """

    name: str
    data: str
    image_size: int
    batch_size: int
    epochs: int
    max_steps_per_epoch: int | None
    multi_scale: bool
    num_workers: int
    synthetic_train: int = 240
    synthetic_test: int = 60
    teacher_epochs: int | None = None
    drop_path_rate: float = 0.1
    keep_epochs: tuple[int, ...] = ()
    pretrained: bool = False
    official_teacher: str = "train"
    lr: float | None = None

    def __post_init__(self):
        if self.teacher_epochs is None:
            object.__setattr__(self, "teacher_epochs", self.epochs)
        if self.official_teacher not in TEACHER_SOURCES:
            raise ValueError(
                f"official_teacher={self.official_teacher!r}: choose one of {', '.join(map(repr, TEACHER_SOURCES))}"
            )

    def replace(self, **changes) -> Profile:
        """A copy with some fields changed, e.g. ``profile.replace(epochs=3)``."""
        return dataclasses.replace(self, **changes)


PROFILES: dict[str, Profile] = {
    # A laptop lesson: synthetic frames at 64 px, a few dozen steps of 16 frames; the seven notebooks take
    # about six minutes on 2 CPU cores (README). Chosen so that a learner's own run shows what the real-frame
    # study found (the series' choice, measured in docs/results.md, "The quick profile's story"): with a
    # quarter of the masks the distilled student beats the student alone. At 64 px a step is mostly
    # per-operation overhead, so 16 frames cost little more than 8; the learning rate is 3x the paper's
    # so that 64 student steps get somewhere. The teacher trains 120 steps (15 epochs of 8), the students 64.
    "quick": Profile(
        name="quick",
        data="synthetic",
        image_size=64,
        batch_size=16,
        epochs=8,
        teacher_epochs=15,
        max_steps_per_epoch=8,
        multi_scale=False,
        num_workers=0,
        keep_epochs=(5,),
        lr=3e-4,
    ),
    # The real data at a size a CPU can train: 128 px, so that the study of when distillation
    # helps (teacher, alpha sweep, 3 seeds, teacher strength) fits about 10 hours on 2 cores.
    # The teacher trains 4x longer than its students and keeps snapshots for that study.
    "standard": Profile(
        name="standard",
        data="real",
        image_size=128,
        batch_size=8,
        epochs=10,
        teacher_epochs=40,
        max_steps_per_epoch=None,
        multi_scale=False,
        num_workers=0,
        keep_epochs=(3, 5, 10, 20, 30),
    ),
    # A real KDAS result within one free Colab session (a T4 GPU, 2 CPU cores): the official Polyp-PVT
    # teacher (never trained here), an ImageNet-pretrained student, 352 px, single scale (multi-scale
    # costs 3.15x per epoch). Its 75 epochs are derived from FLOPs in README ("Reproduce the paper on a
    # GPU"): kdas_utils.efficiency.session_epochs(30 * 60, 2.0) == 75, checked by tests/test_config.py.
    # Not timed on a T4; on an H200 its 75 student epochs took 10.2 min (docs/gpu.md). The series' choice.
    "colab": Profile(
        name="colab",
        data="real",
        image_size=352,
        batch_size=16,
        epochs=75,
        max_steps_per_epoch=None,
        multi_scale=False,
        num_workers=2,
        pretrained=True,
        official_teacher="official",
    ),
    # The paper's recipe: 352 px, batch 16, 100 epochs, multi-scale, ImageNet-pretrained backbones; the
    # official Polyp-PVT teacher once prepared (as the released code distils from it), else one trained
    # here from a pretrained backbone. A GPU run.
    "paper": Profile(
        name="paper",
        data="real",
        image_size=352,
        batch_size=16,
        epochs=100,
        max_steps_per_epoch=None,
        multi_scale=True,
        num_workers=4,
        pretrained=True,
        official_teacher="official if prepared",
    ),
}


def cuda_available() -> bool:
    """True when torch sees a CUDA GPU."""
    return torch.cuda.is_available()


def default_profile_name() -> str:
    """``colab`` on a CUDA machine that has the real data (``$KDAS_DATA_ROOT/TrainDataset``): a
    KDAS student within one session; ``quick`` everywhere else (a fresh Colab GPU session starts with
    the lesson, not an error). ``paper``, the full 100-epoch recipe, is always asked for by name."""
    return "colab" if cuda_available() and (data_root() / "TrainDataset").is_dir() else "quick"


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name``, else ``$KDAS_PROFILE``, else the machine's default.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    chosen = name or os.environ.get("KDAS_PROFILE") or default_profile_name()
    key = chosen.strip().lower()
    if key not in PROFILES:
        raise ValueError(
            f"unknown profile {chosen!r} (from {'the argument' if name else 'KDAS_PROFILE'}); "
            f"choose one of {', '.join(PROFILE_NAMES)}"
        )
    return PROFILES[key]


def project_root() -> Path:
    """The project folder: ``$KDAS_HOME``, else the nearest folder at or above the current
    directory that holds both ``kdas_utils/`` and ``notebooks/``, else the current directory.

    Notebooks run with their own folder as the current directory, so walking up finds the
    checkout whether the code runs from ``notebooks/``, ``tests/`` or the top.
    """
    env = os.environ.get("KDAS_HOME")
    if env:
        return Path(env).expanduser().resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "kdas_utils").is_dir() and (folder / "notebooks").is_dir():
            return folder
    return here


def _path_from_env(variable: str, default: Path) -> Path:
    value = os.environ.get(variable)
    return Path(value).expanduser().resolve() if value else default


def data_root() -> Path:
    """Where the real datasets live (PraNet layout): ``$KDAS_DATA_ROOT`` or ``data/polyp``."""
    return _path_from_env("KDAS_DATA_ROOT", project_root() / "data" / "polyp")


TEST_ROOTS_VARIABLE = "KDAS_TEST_ROOTS"


def test_roots() -> list[Path]:
    """Further test roots to score on, beside the data root's ``TestDataset/``: the folders named in
    ``$KDAS_TEST_ROOTS``, separated by ``os.pathsep`` (``:`` on Linux and macOS), e.g. a folder of
    the unseen sets CVC-ColonDB and ETIS. Empty when it is not set. The profiles on the real data
    score on them (:func:`kdas_utils.runs.profile_splits`)."""
    value = os.environ.get(TEST_ROOTS_VARIABLE, "")
    return [Path(part).expanduser().resolve() for part in value.split(os.pathsep) if part.strip()]


def synthetic_root() -> Path:
    """Where the synthetic dataset is written: ``$KDAS_SYNTH_ROOT`` or ``data/synthetic``."""
    return _path_from_env("KDAS_SYNTH_ROOT", project_root() / "data" / "synthetic")


def runs_dir() -> Path:
    """Where outputs go (figures, checkpoints, executed notebooks): ``$KDAS_RUNS_DIR`` or ``runs``."""
    return _path_from_env("KDAS_RUNS_DIR", project_root() / "runs")


WEIGHTS_VARIABLE = "KDAS_WEIGHTS_DIR"


def weights_dir() -> Path:
    """Where weight files are looked for and prepared: ``$KDAS_WEIGHTS_DIR`` or ``data/weights``.

    It holds the ImageNet backbones (``pvt_v2_b2.pth``, ``pvt_v2_b0.pth``, PVTv2 release or timm
    format) and the official teacher ``PolypPVT.pth`` (see :mod:`kdas_utils.models.pretrained`)."""
    return _path_from_env(WEIGHTS_VARIABLE, project_root() / "data" / "weights")


def download_root() -> Path:
    """The folder whose ``downloads/`` holds fetched archives and ``raw/`` their unpacked releases:
    ``$KDAS_DOWNLOAD_ROOT`` or ``data``. On Colab, :func:`kdas_utils.notebook.keep_on_drive` points
    it at Google Drive so that archives survive a disconnect, while ``KDAS_DATA_ROOT`` stays on the
    machine's own disk, which reads thousands of small frames much faster."""
    return _path_from_env("KDAS_DOWNLOAD_ROOT", project_root() / "data")
