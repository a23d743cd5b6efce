"""Downloading the public polyp datasets: resumable, checksummed, safely extracted.

Only the standard library is used (``urllib``, ``zipfile``, ``tarfile``, ``hashlib``).

* :func:`download` fetches a URL into a ``.part`` file and resumes it with an HTTP
  ``Range`` request after an interruption; the file gets its final name only once its
  sha256 matches, so a half-downloaded or wrong file is never taken for the real one.
* :func:`extract_archive` refuses any member that would land outside the target folder
  (absolute paths, ``..``, links pointing out, devices) and extracts into a staging
  folder that is moved into place only when complete.
* :func:`download_dataset` ties both to the entries of :data:`SOURCES`.

About checksums: Simula publishes no checksum for ``kvasir-seg.zip``. Its entry therefore
has ``sha256=None``; the first download must be allowed explicitly
(``allow_unpinned=True``), its digest is printed and written beside the archive, and every
later use verifies against it (trust on first use). Pass ``sha256=`` to pin your own.
PraNet's train/test archives and the official Polyp-PVT weights are served from Google Drive,
which has no stable direct address: :mod:`kdas_utils.data.gdrive` fetches them with ``gdown``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from ..environment import progress_bars
from ..errors import KDASError


class DownloadError(KDASError, RuntimeError):
    """A download or a checksum failed; the message says what to do."""


class UnsafeArchiveError(DownloadError):
    """An archive member would be written outside the target folder."""


@dataclass(frozen=True)
class DatasetSource:
    """A public dataset release."""

    name: str
    url: str
    filename: str
    sha256: str | None
    homepage: str
    citation: str
    licence: str


SOURCES: dict[str, DatasetSource] = {
    "kvasir-seg": DatasetSource(
        name="kvasir-seg",
        url="https://datasets.simula.no/downloads/kvasir-seg.zip",
        filename="kvasir-seg.zip",
        sha256=None,  # not published by Simula: pinned on first download, see module docstring
        homepage="https://datasets.simula.no/kvasir-seg/",
        citation="Jha et al., Kvasir-SEG: A Segmented Polyp Dataset, MMM 2020",
        licence="research and educational use; cite the paper",
    ),
}


def sha256sum(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, sha256: str | None, url: str) -> str:
    digest = sha256sum(path)
    if sha256 is not None and digest != sha256.lower():
        raise DownloadError(
            f"{path}: sha256 is {digest} but {sha256} was expected for {url}. The file is "
            f"corrupt or the release changed; it was not kept. Run again, or pass the new "
            f"checksum if you trust the source."
        )
    return digest


def download(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    resume: bool = True,
    progress: bool = True,
    timeout: float = 30.0,
    chunk_size: int = 1 << 16,
) -> Path:
    """Download ``url`` to ``dest``, resuming a previous partial download.

    Args:
        url: the address.
        dest: the final file path; bytes arrive in ``dest + '.part'`` first.
        sha256: the expected hex digest; when given, a mismatch deletes the download and
            raises. An existing ``dest`` is checked against it and reused when it matches.
        resume: continue a ``.part`` file with an HTTP Range request (a server that ignores
            ranges answers 200 and the download restarts from zero).

    Raises:
        DownloadError: on an interrupted transfer (run again to resume), an HTTP error or
            a checksum mismatch.
    """
    dest = Path(dest)
    if dest.exists():
        _verify(dest, sha256, url)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if resume and part.exists() else 0
    headers = {"User-Agent": "kdas-notebooks"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
            if offset and response.status == 206:
                mode = "ab"
            else:
                mode, offset = "wb", 0
            length = response.headers.get("Content-Length")
            expected = offset + int(length) if length is not None else None
            received = offset
            with (
                open(part, mode) as handle,
                tqdm(
                    total=expected,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    desc=dest.name,
                    disable=not (progress and progress_bars()),
                ) as bar,
            ):
                while block := response.read(chunk_size):
                    handle.write(block)
                    received += len(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # the .part file already holds everything
            expected = received = offset
        else:
            raise DownloadError(f"{url}: HTTP {error.code} {error.reason}. Check the address or try later.") from error
    except (urllib.error.URLError, OSError, ConnectionError) as error:
        done = part.stat().st_size if part.exists() else 0
        raise DownloadError(
            f"{url}: download interrupted after {done} bytes ({error}); run the same call again to resume from {part}."
        ) from error
    if expected is not None and received < expected:
        raise DownloadError(
            f"{url}: download interrupted after {received} of {expected} bytes; run the same call "
            f"again to resume from {part}."
        )
    try:
        _verify(part, sha256, url)
    except DownloadError:
        part.unlink()
        raise
    os.replace(part, dest)
    return dest


# --------------------------------------------------------------------------- archives


def _check_member(archive: Path, name: str, target: Path) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    resolved = (target / pure).resolve()
    if pure.is_absolute() or ".." in pure.parts or not resolved.is_relative_to(target):
        raise UnsafeArchiveError(
            f"{archive}: member {name!r} would be written outside {target}; refusing to extract "
            f"(the archive is corrupt or malicious). Nothing was extracted."
        )


def _check_zip(archive: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as bundle:
        for info in bundle.infolist():
            _check_member(archive, info.filename, target)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UnsafeArchiveError(
                    f"{archive}: member {info.filename!r} is a symbolic link; refusing to extract. "
                    f"Nothing was extracted."
                )


def _check_tar(archive: Path, target: Path) -> None:
    with tarfile.open(archive) as bundle:
        for member in bundle.getmembers():
            _check_member(archive, member.name, target)
            if member.issym() or member.islnk():
                link_base = (target / member.name).parent if member.issym() else target
                if os.path.isabs(member.linkname) or not (link_base / member.linkname).resolve().is_relative_to(target):
                    raise UnsafeArchiveError(
                        f"{archive}: member {member.name!r} links to {member.linkname!r}, outside "
                        f"{target}; refusing to extract. Nothing was extracted."
                    )
            elif not (member.isfile() or member.isdir()):
                raise UnsafeArchiveError(
                    f"{archive}: member {member.name!r} is a device or special file; refusing to "
                    f"extract. Nothing was extracted."
                )


def extract_archive(archive: str | Path, target: str | Path) -> Path:
    """Extract a ``.zip`` or ``.tar(.gz|.bz2|.xz)`` archive into ``target`` and return it.

    Every member is checked before anything is written; the archive is unpacked into a
    staging folder beside ``target`` and renamed into place when complete. ``target`` must
    not exist yet or be empty.

    Raises:
        UnsafeArchiveError: naming the member that would escape ``target``.
        DownloadError: for an unknown archive format or a non-empty target.
    """
    archive, target = Path(archive), Path(target).expanduser().resolve()
    if target.exists() and any(target.iterdir()):
        raise DownloadError(f"{target}: not empty; extract into a new folder or remove this one first.")
    if zipfile.is_zipfile(archive):
        _check_zip(archive, target)
        opener = lambda dest: zipfile.ZipFile(archive).extractall(dest)  # noqa: E731
    elif tarfile.is_tarfile(archive):
        _check_tar(archive, target)
        opener = lambda dest: tarfile.open(archive).extractall(dest, filter="data")  # noqa: E731
    else:
        raise DownloadError(f"{archive}: not a zip or tar archive; the download may be an HTML error page.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        opener(staging)
        if target.exists():
            target.rmdir()
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def download_dataset(
    name: str,
    root: str | Path,
    sha256: str | None = None,
    allow_unpinned: bool = False,
    url: str | None = None,
    progress: bool = True,
) -> Path:
    """Download and extract a dataset of :data:`SOURCES` under ``root``; return its folder.

    The archive goes to ``root/downloads/<filename>``, its contents to ``root/raw/<name>/``.
    The checksum used is, in order: ``sha256``, the entry's published one, the one recorded
    beside the archive by an earlier download. With none of them, ``allow_unpinned=True`` is
    required; the digest is then printed and recorded (trust on first use).

    ``url`` overrides the entry's address (a mirror, or a local server in the tests).
    """
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(SOURCES)}")
    source = SOURCES[name]
    root = Path(root).expanduser()
    archive = root / "downloads" / source.filename
    record = archive.with_name(archive.name + ".sha256")
    pinned = sha256 or source.sha256 or (record.read_text().split()[0] if record.is_file() else None)
    if pinned is None and not allow_unpinned:
        raise DownloadError(
            f"{source.name}: no published sha256 for {source.url}. Pass allow_unpinned=True to download "
            f"it and record its checksum in {record} (later downloads are verified against it), or pass "
            f"sha256='...' if you know it."
        )
    download(url or source.url, archive, sha256=pinned, progress=progress)
    if pinned is None:
        digest = sha256sum(archive)
        record.write_text(f"{digest}  {source.filename}\n")
        print(f"{source.filename}: sha256 {digest} (recorded in {record})")
    target = root / "raw" / source.name
    if not (target.exists() and any(target.iterdir())):
        extract_archive(archive, target)
    return target
