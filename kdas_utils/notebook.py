"""Notebook chores: where am I running, which versions, and saving figures under ``runs/``."""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .config import runs_dir

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


def save_figure(fig, name: str, folder: str | Path | None = None, dpi: int = 110) -> Path:
    """Save ``fig`` as ``runs/figures/<name>.png`` (or under ``folder``) and return the path."""
    folder = Path(folder) if folder is not None else runs_dir() / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
