"""Notebook chores: where am I running, which versions, saving figures under ``runs/``, and
whether to draw progress bars (not in notebooks executed headless)."""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .config import runs_dir

# ``make tutorial`` and ``make test`` set it to 0 for the notebooks they execute: a tqdm bar saved in
# a notebook's outputs is only its first frame ("0%|          | 0/8"), residue rather than information.
PROGRESS_VARIABLE = "KDAS_PROGRESS"

REPORTED_PACKAGES = ("torch", "torchvision", "timm", "albumentations", "numpy", "matplotlib", "ipywidgets")


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


def environment_report() -> dict[str, str]:
    """Python, platform, package versions and the compute device, as a dict (printed by notebooks)."""
    report = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    for name in REPORTED_PACKAGES:
        try:
            report[name] = version(name)
        except PackageNotFoundError:
            report[name] = "not installed"
    import torch

    if torch.cuda.is_available():
        report["device"] = f"cuda ({torch.cuda.get_device_name(0)})"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        report["device"] = "mps"
    else:
        report["device"] = f"cpu ({torch.get_num_threads()} threads)"
    return report


def print_environment() -> None:
    """Print :func:`environment_report` as aligned ``name: value`` lines."""
    report = environment_report()
    width = max(map(len, report))
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")


def progress_bars() -> bool:
    """Whether to draw tqdm progress bars: yes, unless ``$KDAS_PROGRESS`` is ``0`` (or ``false``,
    ``no``, ``off``), which ``make tutorial`` and ``make test`` set for the notebooks they execute."""
    return os.environ.get(PROGRESS_VARIABLE, "1").strip().lower() not in ("0", "false", "no", "off")


def save_figure(fig, name: str, folder: str | Path | None = None, dpi: int = 110) -> Path:
    """Save ``fig`` as ``runs/figures/<name>.png`` (or under ``folder``) and return the path."""
    folder = Path(folder) if folder is not None else runs_dir() / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def offer_real_data(force: bool = False, fetch=None, **prepare):
    """On Colab (or with ``force``), show the panel that keeps the work on Google Drive and downloads
    PraNet's data (first), Kvasir-SEG (second) and the official Polyp-PVT teacher, so that the
    ``standard``, ``colab`` and ``paper`` profiles can run (:func:`kdas_utils.colab.offer`). Returns the
    widget, or ``None`` when not on Colab or when there is nothing left to offer. ``fetch`` is how Google
    Drive files arrive (default ``gdown``); ``prepare`` goes to ``prepare_kvasir_seg`` (``url=`` a mirror,
    ``test_count=``).
    """
    from .colab import offer

    return offer(force=force, fetch=fetch, **prepare)
