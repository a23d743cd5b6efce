"""The Colab path: keep the work on Google Drive, and fetch the real data and the official teacher
with buttons.

Every notebook's setup cell calls :func:`kdas_utils.notebook.offer_real_data` on Colab, which shows
the panel of :func:`offer`, one button a row:

1. **Keep my work on Google Drive** (:func:`keep_on_drive`): mounts the learner's Drive and points
   ``KDAS_RUNS_DIR`` (checkpoints), ``KDAS_WEIGHTS_DIR`` (the official teacher, backbones) and
   ``KDAS_DOWNLOAD_ROOT`` (the downloaded archives) at ``MyDrive/kdas-notebooks/``. After a
   disconnect, running the notebook again and pressing it again finds everything there: the archives
   are unpacked again (no download) and training resumes from its last checkpoint. The frames
   themselves stay on the machine's own disk (``KDAS_DATA_ROOT``), which reads thousands of small
   files far faster than Drive does;
2. **PraNet's data** (:func:`~kdas_utils.data.prepare_pranet`): the training and test sets of
   PraNet's split, the one the paper's numbers use (Google Drive, with ``gdown``);
3. **Kvasir-SEG only** (:func:`~kdas_utils.data.prepare_kvasir_seg`): 1000 frames from Simula's
   stable address, when Drive refuses;
4. **the official teacher** (:func:`~kdas_utils.models.pretrained.prepare_polyp_pvt`): the trained
   Polyp-PVT that the ``colab`` and ``paper`` profiles distil from.

A row whose file is already there shows that instead of its button. Errors a learner can cause or
meet (Drive's quota, a corrupt download) are printed in one line under the buttons, with what to do;
the button can then be pressed again. The panel and its wording are this series' choices.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import ipywidgets as widgets
from IPython.display import display

from .config import WEIGHTS_VARIABLE, data_root, download_root, runs_dir, weights_dir
from .data import DRIVE_FILES, prepare_kvasir_seg, prepare_pranet
from .data.layout import PRANET_ARCHIVES
from .environment import in_colab
from .errors import USER_ERRORS
from .models.pretrained import OFFICIAL_TEACHER, prepare_polyp_pvt

DRIVE_MOUNT = Path("/content/drive")  # where Colab mounts Drive; the learner's files are under MyDrive/
DRIVE_FOLDER = "kdas-notebooks"


def drive_home(mount_point: str | Path | None = None, folder: str = DRIVE_FOLDER) -> Path:
    """``<mount point>/MyDrive/<folder>``: where :func:`keep_on_drive` keeps the work."""
    return Path(mount_point or DRIVE_MOUNT) / "MyDrive" / folder


def _copy_missing(local: Path, kept: Path) -> bool:
    """Copy what this session made in ``local`` before Drive was chosen to ``kept``, if ``kept``
    holds nothing yet (never overwriting Drive). Returns whether anything was copied."""
    if local.resolve() == kept.resolve() or not local.is_dir() or not any(local.iterdir()) or any(kept.iterdir()):
        return False
    staging = kept.with_name(f".{kept.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(local, staging, ignore=shutil.ignore_patterns("*.part", ".*.partial"))
    kept.rmdir()  # empty, checked above
    staging.rename(kept)
    return True


def keep_on_drive(mount_point: str | Path | None = None, folder: str = DRIVE_FOLDER, fetch=None) -> Path:
    """Mount Google Drive (Colab) and keep checkpoints, weights and downloaded archives there; return
    ``MyDrive/<folder>``.

    Sets, for this kernel and the ``kdas`` commands it starts: ``KDAS_RUNS_DIR`` = ``<home>/runs``,
    ``KDAS_WEIGHTS_DIR`` = ``<home>/weights``, ``KDAS_DOWNLOAD_ROOT`` = ``<home>/data``. What this session
    wrote to those places before is copied over when Drive has none of it yet. If PraNet's archives are on
    Drive and the local data root is empty (a new session), they are unpacked again, without a download.

    It calls ``google.colab.drive.mount``, which asks the learner to allow access the first time.
    """
    from google.colab import drive  # optional: exists on Colab only

    mount_point = Path(mount_point or DRIVE_MOUNT)
    drive.mount(str(mount_point))
    home = drive_home(mount_point, folder)
    # variable: (what this session has so far, where Drive keeps it, the folder the variable names)
    places = {
        "KDAS_RUNS_DIR": (runs_dir(), home / "runs", home / "runs"),
        WEIGHTS_VARIABLE: (weights_dir(), home / "weights", home / "weights"),
        # only the archives: the local data/ also holds the synthetic set and the unpacked frames
        "KDAS_DOWNLOAD_ROOT": (download_root() / "downloads", home / "data" / "downloads", home / "data"),
    }
    for variable, (local, kept, folder) in places.items():
        kept.mkdir(parents=True, exist_ok=True)
        if _copy_missing(local, kept):
            print(f"copied {local} to {kept}")
        os.environ[variable] = str(folder)
        print(f"{variable}={folder}")
    archives = [home / "data" / "downloads" / DRIVE_FILES[key].filename for key in PRANET_ARCHIVES]
    if not (data_root() / "TrainDataset").is_dir() and all(a.is_file() for a in archives):
        root = prepare_pranet(home / "data", data_root(), fetch=fetch)
        print(f"PraNet's data unpacked from Drive to {root}")
    return home


def _status() -> dict[str, Path | None]:
    """What is already there: the real data root, and the official teacher."""
    root, teacher = data_root(), weights_dir() / OFFICIAL_TEACHER
    return {
        "data": root if (root / "TrainDataset").is_dir() else None,
        "teacher": teacher if teacher.is_file() else None,
    }


def offer(force: bool = False, fetch=None, **prepare):
    """Show the panel of the module docstring on Colab (or anywhere with ``force``); return its
    ``ipywidgets.VBox``, or ``None`` when there is nothing to offer (or not on Colab).

    Args:
        force: show it outside Colab too (without the Drive row, which needs Colab).
        fetch: how Google Drive files arrive (default ``gdown``; see :mod:`kdas_utils.data.gdrive`).
        prepare: passed to :func:`~kdas_utils.data.prepare_kvasir_seg` (``url=`` a mirror, ``test_count=``).
    """
    if not (force or in_colab()):
        return None

    status = _status()
    colab = in_colab()
    if not colab and all(status.values()):
        print(f"real data found at {status['data']}; official teacher found at {status['teacher']}")
        return None
    if colab:  # pragma: no cover - Colab only: ipywidgets 8 needs Colab's custom widget manager
        from google.colab import output  # optional: exists on Colab only

        output.enable_custom_widget_manager()
    log = widgets.Output()
    buttons: dict[str, widgets.Button] = {}

    def refresh():
        found = _status()
        for key, wanted in (("pranet", "data"), ("kvasir", "data"), ("teacher", "teacher")):
            if key in buttons and found[wanted] is not None:
                buttons[key].disabled = True

    def action(key: str, run):
        def on_click(_):
            buttons[key].disabled = True
            with log:
                try:
                    run()
                except USER_ERRORS as error:
                    buttons[key].disabled = False
                    print(f"error: {' '.join(str(error).split())}")
                    return
                except Exception:
                    buttons[key].disabled = False
                    raise
            refresh()

        return on_click

    def row(key: str, label: str, text: str, run, primary: bool = False):
        button = widgets.Button(
            description=label,
            icon="download" if key != "drive" else "hdd",
            button_style="primary" if primary else "",
            layout=widgets.Layout(width="auto"),
        )
        button.on_click(action(key, run))
        buttons[key] = button
        return widgets.VBox([widgets.HTML(text), button])

    def fetch_pranet():
        root = prepare_pranet(download_root(), data_root(), fetch=fetch)
        print(f"ready: PraNet's data at {root}. {_next_step()}")

    def fetch_kvasir():
        root = prepare_kvasir_seg(download_root(), data_root(), allow_unpinned=True, **prepare)
        print(f"ready: Kvasir-SEG at {root}. {_next_step()}")

    def fetch_teacher():
        path = prepare_polyp_pvt(fetch=fetch)
        print(f"ready: the official teacher at {path}; the colab and paper profiles distil from it.")

    def to_drive():
        home = keep_on_drive(fetch=fetch)
        print(f"your work is kept in {home}: after a disconnect, run this cell again and press this button.")

    train, test, teacher = DRIVE_FILES["pranet-train"], DRIVE_FILES["pranet-test"], DRIVE_FILES["polyp-pvt"]
    rows = []
    if colab:
        rows.append(
            row(
                "drive",
                "Keep my work on Google Drive",
                "<b>First, if you want your work to survive a disconnect</b>: keep checkpoints, weights and "
                f"downloads in <code>MyDrive/{DRIVE_FOLDER}</code> on your Google Drive (Colab asks for access). "
                "After a disconnect, run the notebook again and press this again: the run resumes. If nothing "
                "happens, run <code>from kdas_utils.colab import keep_on_drive; keep_on_drive()</code> in a cell.",
                to_drive,
            )
        )
    if status["data"] is None:
        rows.append(
            row(
                "pranet",
                "Download PraNet's data",
                "Only the synthetic set is here, so the profile is <b>quick</b>. <b>PraNet's split</b>, the one the "
                "paper's numbers use: 1450 training frames (Kvasir-SEG 900, CVC-ClinicDB 550) and five test sets "
                f"(798 frames), two archives from Google Drive (<a href='{train.link}'>train</a>, "
                f"<a href='{test.link}'>test</a>; {train.linked_from}; research and education use, cite each "
                f"dataset), into <code>{data_root()}</code>.",
                fetch_pranet,
                primary=True,
            )
        )
        rows.append(
            row(
                "kvasir",
                "Download Kvasir-SEG only",
                "Or, if Google Drive refuses: <b>Kvasir-SEG</b> alone (1000 frames, about 46 MB, from Simula; "
                "research and educational use, cite Jha et al. 2020), split 900/100 with a fixed seed (not "
                "PraNet's list, so not comparable with the paper's Kvasir column).",
                fetch_kvasir,
            )
        )
    else:
        rows.append(widgets.HTML(f"Real data found at <code>{status['data']}</code>."))
    if status["teacher"] is None:
        rows.append(
            row(
                "teacher",
                "Download the official teacher",
                f"<b>The official Polyp-PVT teacher</b> ({teacher.filename}, {teacher.size}, "
                f"<a href='{teacher.link}'>Google Drive</a>, {teacher.licence}): the colab profile distils from it "
                "instead of training a teacher; it is checked to load into the teacher network.",
                fetch_teacher,
            )
        )
    else:
        rows.append(widgets.HTML(f"Official teacher found at <code>{status['teacher']}</code>."))
    box = widgets.VBox([*rows, log])
    box.buttons = buttons  # by name: drive, pranet, kvasir, teacher (those shown)
    display(box)
    return box


def _next_step() -> str:
    return (
        "Re-run the parameters cell: with a GPU the default profile is now 'colab' (it needs the official "
        "teacher, the last button); on a CPU choose config.get_profile('standard')."
    )
