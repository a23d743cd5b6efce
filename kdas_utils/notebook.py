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


def offer_real_data(force: bool = False, **prepare):
    """On Colab (or with ``force``), show a button that downloads Kvasir-SEG (about 46 MB, from
    Simula) and arranges it as the data root (:func:`~kdas_utils.data.prepare_kvasir_seg`), so
    that the ``standard`` and ``paper`` profiles can run. Returns the widget, or ``None`` when
    not on Colab or when the real data is already there. ``prepare`` goes to
    ``prepare_kvasir_seg`` (``url=`` a mirror, ``test_count=``).
    """
    from .config import data_root, project_root

    root = data_root()
    if not (force or in_colab()):
        return None
    if (root / "TrainDataset").is_dir():
        print(f"real data found at {root}")
        return None
    import ipywidgets as widgets
    from IPython.display import display

    if in_colab():  # pragma: no cover - Colab only: ipywidgets 8 needs Colab's custom widget manager
        from google.colab import output

        output.enable_custom_widget_manager()
    text = widgets.HTML(
        f"Only the synthetic set is here, so the profile is <b>quick</b>. To train on real frames, download "
        f"<b>Kvasir-SEG</b> (1000 frames, about 46 MB, research and educational use, cite Jha et al. 2020) into "
        f"<code>{root}</code>, split 900/100 with a fixed seed. Simula publishes no checksum: the archive's "
        f"sha256 is recorded on this first download and checked on every later one."
    )
    button = widgets.Button(description="Download Kvasir-SEG", icon="download", button_style="primary")
    log = widgets.Output()

    def fetch(_):
        from .data import prepare_kvasir_seg

        button.disabled = True
        with log:
            try:
                prepare_kvasir_seg(project_root() / "data", root, allow_unpinned=True, **prepare)
            except Exception:
                button.disabled = False
                raise
            print(
                f"ready: {root}. Re-run the parameters cell: the default profile is now 'paper' with a GPU "
                f"(choose config.get_profile('standard') on a CPU)."
            )

    button.on_click(fetch)
    box = widgets.VBox([text, button, log])
    display(box)
    return box
