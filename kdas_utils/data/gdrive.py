"""Files that live on Google Drive: PraNet's data archives and the official Polyp-PVT teacher.

Google Drive gives no stable direct address for a shared file (large files go through a
confirmation page, and a file that many people fetch hits a daily quota), so these files are
fetched with ``gdown`` (a PyPI package, preinstalled on Colab; elsewhere the ``colab`` extra,
``pip install -e '.[colab]'``). ``gdown`` is imported only inside :func:`gdown_fetch`, so the rest
of the series, and its tests, run without it.

How a file arrives (:func:`fetch_drive_file`), so that nothing half-written ever has the final name:

1. a *fetch* function writes it into a staging folder beside the destination,
   ``.<name>.partial/``: :func:`gdown_fetch` (Google Drive, the default) or :func:`mirror_fetch`
   (a plain HTTP mirror, resumable; the tests point it at a server on 127.0.0.1);
2. the complete file is checked (an HTML page instead of the file, a corrupt archive, a weight file
   for another network) and removed with the staging folder if it fails;
3. it is flushed to disk, renamed to its final name, and its sha256 is recorded beside it
   (``<file>.sha256``). Nobody publishes checksums for these files: the first download is trusted
   and every later use is verified against the record.

An interrupted fetch keeps the staging folder, so that running the same command again resumes
(``gdown`` skips what it finished; :func:`mirror_fetch` continues its ``.part`` file). When Drive
refuses (quota), :class:`DriveDownloadError` gives the link to open in a browser and the exact
path to put the file at; the next run checks and uses that file like a download.

The addresses are the ones the PraNet and Polyp-PVT READMEs link (checked against those READMEs;
they cannot be reached from the machine this series is developed on).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..files import atomic_path
from .download import DownloadError, download, sha256sum


class DriveDownloadError(DownloadError):
    """A file could not be fetched from Google Drive; the message gives the manual way."""


class GdownMissingError(DriveDownloadError):
    """``gdown`` is not installed; the message says how to install it."""


@dataclass(frozen=True)
class DriveFile:
    """One file published on Google Drive.

    Attributes:
        name: the series' key, e.g. ``"pranet-train"``.
        drive_id: the Drive id of the file, or of the folder that holds it (``kind="folder"``).
        kind: ``"file"`` or ``"folder"``.
        filename: the file kept locally (for a folder: the file taken from it).
        size: its size, in words, for the offers and the README.
        linked_from: the README that links it.
        licence: the terms it comes with.
        citation: the paper to cite when using it.
    """

    name: str
    drive_id: str
    kind: str
    filename: str
    size: str
    linked_from: str
    licence: str
    citation: str

    @property
    def link(self) -> str:
        """The address to open in a browser."""
        if self.kind == "folder":
            return f"https://drive.google.com/drive/folders/{self.drive_id}"
        return f"https://drive.google.com/file/d/{self.drive_id}/view"


PRANET_README = "https://github.com/DengPingFan/PraNet (README, section 3.1)"
POLYP_PVT_README = "https://github.com/DengPingFan/Polyp-PVT (README, section 4.7)"
PRANET_CITATION = (
    "Fan et al., PraNet, MICCAI 2020; and the datasets: Jha et al. (Kvasir-SEG) MMM 2020, Bernal et al. "
    "(CVC-ClinicDB) CMIG 2015, Tajbakhsh et al. (CVC-ColonDB) TMI 2016, Silva et al. (ETIS) IJCARS 2014, "
    "Vazquez et al. (CVC-300 / EndoScene) JHE 2017"
)

DRIVE_FILES: dict[str, DriveFile] = {
    # PraNet's training split: 900 Kvasir-SEG + 550 CVC-ClinicDB frames.
    "pranet-train": DriveFile(
        name="pranet-train",
        drive_id="1lODorfB33jbd-im-qrtUgWnZXxB94F55",
        kind="file",
        filename="TrainDataset.zip",
        size="1450 frames, a few hundred MB (size not checked from here)",
        linked_from=PRANET_README,
        licence="research and education; the datasets' own terms (cite each)",
        citation=PRANET_CITATION,
    ),
    # PraNet's five test sets: Kvasir 100, CVC-ClinicDB 62, CVC-ColonDB 380, ETIS-LaribPolypDB 196, CVC-300 60.
    "pranet-test": DriveFile(
        name="pranet-test",
        drive_id="1o8OfBvYE6K-EpDyvzsmMPndnUMwb540R",
        kind="file",
        filename="TestDataset.zip",
        size="798 frames in five test sets, a few hundred MB (size not checked from here)",
        linked_from=PRANET_README,
        licence="research and education; the datasets' own terms (cite each)",
        citation=PRANET_CITATION,
    ),
    # The trained Polyp-PVT: the teacher the released KDAS code distils from (teacher_weights/PolypPVT.pth).
    "polyp-pvt": DriveFile(
        name="polyp-pvt",
        drive_id="1xC5Opwu5Afz4xiK5O9v4NnQOZY0A9-2j",
        kind="folder",
        filename="PolypPVT.pth",
        size="about 100 MB (25.1M float32 parameters)",
        linked_from=POLYP_PVT_README,
        licence="research and education only (Polyp-PVT's licence)",
        citation="Dong et al., Polyp-PVT: Polyp Segmentation with Pyramid Vision Transformers, CAAI AIR 2023",
    ),
}

# fetch(item, folder) -> the path of the complete file, written somewhere inside ``folder``.
Fetch = Callable[[DriveFile, Path], Path]


def gdown_fetch(item: DriveFile, folder: Path, quiet: bool = False) -> Path:
    """Fetch ``item`` from Google Drive into ``folder`` with ``gdown`` (resuming what an earlier
    call left there); return the file. The thin wrapper around ``gdown``: the only place it is used.

    Raises:
        DriveDownloadError: ``gdown`` is not installed, or Drive did not hand the file over.
    """
    try:
        import gdown  # optional: the `colab` extra (Colab has it already)
    except ImportError as error:
        raise GdownMissingError(
            "gdown is not installed; it fetches files from Google Drive (Colab has it): "
            "pip install 'kdas-notebooks[colab]' (or pip install gdown), then run the same command again"
        ) from error
    folder.mkdir(parents=True, exist_ok=True)
    if item.kind == "folder":
        got = gdown.download_folder(id=item.drive_id, output=str(folder), quiet=quiet, resume=True)
        if not got:  # gdown < 5 returns None where gdown 5 raises
            raise DriveDownloadError(f"gdown fetched nothing from the Drive folder {item.link}")
        return _pick(item, folder)
    target = folder / item.filename
    got = gdown.download(id=item.drive_id, output=str(target), quiet=quiet, resume=True)
    if not got or not target.is_file():
        raise DriveDownloadError(f"gdown fetched nothing from {item.link}")
    return target


def mirror_fetch(base_url: str, progress: bool = True) -> Fetch:
    """A fetch function that takes ``<base_url>/<filename>`` over plain HTTP(S) instead of Drive
    (a mirror you host, or a server on 127.0.0.1 in the tests). Resumable, as
    :func:`~kdas_utils.data.download` is."""

    def fetch(item: DriveFile, folder: Path) -> Path:
        return download(f"{base_url.rstrip('/')}/{item.filename}", folder / item.filename, progress=progress)

    return fetch


def _pick(item: DriveFile, folder: Path) -> Path:
    """The file of ``item`` among what a folder download wrote: its name, else the only file
    with its suffix."""
    files = [p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".part")]
    named = [p for p in files if p.name == item.filename]
    if not named:
        named = [p for p in files if p.suffix == Path(item.filename).suffix]
    if len(named) != 1:
        found = ", ".join(sorted(p.name for p in files)) or "nothing"
        raise DriveDownloadError(
            f"the Drive folder {item.link} gave {found}; expected one {item.filename}. "
            f"Download {item.filename} from it by hand (see below)."
        )
    return named[0]


def manual_instructions(item: DriveFile, dest: Path) -> str:
    """What to do by hand when Drive refuses: the link, and the exact path for the file."""
    inside = f" (the file {item.filename} inside the folder)" if item.kind == "folder" else ""
    return (
        f"Download it by hand: open {item.link} in a browser{inside}, download it, and put it at {dest} "
        f"(folder {dest.parent}, file name {dest.name}); then run the same command again, which checks it "
        f"and goes on."
    )


def _looks_like_html(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def write_record(record: Path, digest: str, name: str) -> None:
    with atomic_path(record) as partial, open(partial, "w") as handle:
        handle.write(f"{digest}  {name}\n")
        handle.flush()
        os.fsync(handle.fileno())


def fetch_drive_file(
    item: DriveFile,
    dest: str | Path,
    fetch: Fetch | None = None,
    check: Callable[[Path], None] | None = None,
    sha256: str | None = None,
) -> Path:
    """Fetch ``item`` to ``dest`` (see the module docstring) and return ``dest``.

    Args:
        item: an entry of :data:`DRIVE_FILES`.
        dest: the final path, e.g. ``data/weights/PolypPVT.pth``.
        fetch: how to get it (default :func:`gdown_fetch`; :func:`mirror_fetch` for a mirror).
        check: ``check(path)`` raises if the complete file is not usable (e.g. :func:`check_archive`);
            a file that fails it is removed and its error raised.
        sha256: the expected digest; default the one recorded by an earlier download (``dest.sha256``).

    An existing ``dest`` (an earlier download, or a file put there by hand) is checked and reused.

    Raises:
        DriveDownloadError: the fetch failed (run again to resume, or follow the manual way given);
            or a file at ``dest`` differs from its recorded checksum.
    """
    dest = Path(dest).expanduser()
    record = dest.with_name(dest.name + ".sha256")
    expected = sha256 or (record.read_text().split()[0] if record.is_file() else None)
    if dest.is_file():
        digest = sha256sum(dest)
        if expected is not None and digest != expected.lower():
            raise DriveDownloadError(
                f"{dest}: sha256 is {digest} but {expected} was recorded when it was first fetched. The file "
                f"changed: remove it (and {record.name}) to fetch it again."
            )
        if check is not None:
            check(dest)
        if expected is None:
            write_record(record, digest, dest.name)
        return dest
    staging = dest.with_name(f".{dest.name}.partial")
    staging.mkdir(parents=True, exist_ok=True)
    try:
        got = (fetch or gdown_fetch)(item, staging)
    except Exception as error:
        if not any(staging.iterdir()):
            staging.rmdir()  # nothing arrived: nothing to resume
        cause = " ".join(str(error).split()) or type(error).__name__
        if isinstance(error, GdownMissingError):
            raise GdownMissingError(f"{item.name}: {cause}. Or: {manual_instructions(item, dest)}") from error
        kept = f" (what arrived is kept in {staging})" if staging.exists() else ""
        raise DriveDownloadError(
            f"{item.name}: could not fetch {item.filename} ({cause}). If Google Drive refused it, the "
            f"usual reason is its daily quota on a shared file ('Too many users have viewed or downloaded "
            f"this file recently'), which lifts within a day. Run the same command again to resume{kept}, "
            f"or: {manual_instructions(item, dest)}"
        ) from error
    try:
        if _looks_like_html(got):
            raise DriveDownloadError(
                f"{item.name}: Google Drive sent a web page instead of {item.filename} (a quota or "
                f"permission page); it was not kept. {manual_instructions(item, dest)}"
            )
        if check is not None:
            check(got)
        digest = sha256sum(got)
        if expected is not None and digest != expected.lower():
            raise DriveDownloadError(
                f"{item.name}: the fetched {item.filename} has sha256 {digest}, not {expected}; it was not kept."
            )
        _fsync(got)
        os.replace(got, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # after a failed check: nothing of it is kept
    if expected is None:
        write_record(record, digest, dest.name)
        print(f"{dest.name}: sha256 {digest} (recorded in {record})")
    return dest


def check_archive(path: Path) -> None:
    """Raise :class:`~kdas_utils.data.DownloadError` unless ``path`` is a complete zip or tar
    archive: every member's CRC is checked (zip), or the whole stream is read (tar)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as bundle:
                bad = bundle.testzip()
            if bad is not None:
                raise DownloadError(f"{path.name}: member {bad!r} is corrupt (CRC mismatch); the archive was not kept")
            return
        if tarfile.is_tarfile(path):
            with tarfile.open(path) as bundle:
                bundle.getmembers()
            return
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as error:
        raise DownloadError(f"{path.name}: a corrupt archive ({error}); it was not kept") from error
    raise DownloadError(f"{path.name}: not a zip or tar archive (a web page or a truncated download?); it was not kept")
