"""Notebook chores: where am I running, which versions, saving figures under ``runs/``, and
whether to draw progress bars (not in notebooks executed headless)."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

import torch

from .colab import offer
from .environment import PROGRESS_VARIABLE, in_colab, progress_bars  # noqa: F401 (part of this module's API)
from .plots import save_figure  # noqa: F401 (part of this module's API: the notebooks import it from here)

REPORTED_PACKAGES = ("torch", "torchvision", "timm", "albumentations", "numpy", "matplotlib", "ipywidgets")


def environment_report() -> dict[str, str]:
    """Python, platform, package versions and the compute device, as a dict (printed by notebooks)."""
    report = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    for name in REPORTED_PACKAGES:
        try:
            report[name] = version(name)
        except PackageNotFoundError:
            report[name] = "not installed"

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


def offer_real_data(force: bool = False, fetch=None, **prepare):
    """On Colab (or with ``force``), show the panel that keeps the work on Google Drive and downloads
    PraNet's data (first), Kvasir-SEG (second) and the official Polyp-PVT teacher, so that the
    ``standard``, ``colab`` and ``paper`` profiles can run (:func:`kdas_utils.colab.offer`). Returns the
    widget, or ``None`` when not on Colab or when there is nothing left to offer. ``fetch`` is how Google
    Drive files arrive (default ``gdown``); ``prepare`` goes to ``prepare_kvasir_seg`` (``url=`` a mirror,
    ``test_count=``).
    """
    return offer(force=force, fetch=fetch, **prepare)
