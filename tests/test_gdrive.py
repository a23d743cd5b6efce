"""Google Drive files (PraNet's archives, the official Polyp-PVT teacher) over a mirror on 127.0.0.1:
through gdown's wrapper (a stand-in module: the tests pass without gdown) or the plain mirror fetch.
Every failure ends in a named error, and nothing half-written ever carries the final name."""

import hashlib
import io
import sys
import zipfile

import pytest
import torch
from helpers.mirror import Mirror, fake_gdown, polyp_pvt_checkpoint, pranet_archives, zip_bytes

from kdas_utils.data import (
    DRIVE_FILES,
    DatasetError,
    DownloadError,
    DriveDownloadError,
    UnsafeArchiveError,
    fetch_drive_file,
    find_dataset,
    mirror_fetch,
    prepare_pranet,
)
from kdas_utils.data.gdrive import check_archive, gdown_fetch
from kdas_utils.models import WeightLoadError, build_student, build_teacher
from kdas_utils.models.pretrained import prepare_polyp_pvt

TRAIN = DRIVE_FILES["pranet-train"]


@pytest.fixture
def mirror():
    server = Mirror()
    yield server
    server.close()


@pytest.fixture
def weights(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    monkeypatch.setenv("KDAS_WEIGHTS_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def teacher_file():
    """An official-format checkpoint of a (random) Polyp-PVT teacher, and the teacher."""
    torch.manual_seed(5)
    teacher = build_teacher().eval()
    return polyp_pvt_checkpoint(teacher), teacher


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_mirror_fetch_records_the_checksum_and_reuses_the_file(mirror, tmp_path, capsys):
    archive = pranet_archives()["TrainDataset.zip"]
    mirror.files["TrainDataset.zip"] = archive
    dest = tmp_path / "downloads" / "TrainDataset.zip"
    assert fetch_drive_file(TRAIN, dest, mirror_fetch(mirror.url, progress=False), check=check_archive) == dest
    assert dest.read_bytes() == archive and leftovers(dest.parent) == ["TrainDataset.zip", "TrainDataset.zip.sha256"]
    assert (tmp_path / "downloads" / "TrainDataset.zip.sha256").read_text().split()[0] == sha(archive)
    assert sha(archive) in capsys.readouterr().out
    fetch_drive_file(TRAIN, dest, mirror_fetch(mirror.url, progress=False))  # kept: not fetched again
    assert len(mirror.requests) == 1
    dest.write_bytes(archive + b"changed")  # a file that changed since it was recorded is refused
    with pytest.raises(DriveDownloadError, match=r"sha256 is [0-9a-f]{64} but [0-9a-f]{64} was recorded"):
        fetch_drive_file(TRAIN, dest, mirror_fetch(mirror.url, progress=False))


def test_interrupted_download_resumes_and_never_has_the_final_name(mirror, tmp_path):
    archive = pranet_archives()["TrainDataset.zip"]
    mirror.files["TrainDataset.zip"], mirror.drop_after["TrainDataset.zip"] = archive, 1000
    dest = tmp_path / "downloads" / "TrainDataset.zip"
    with pytest.raises(DriveDownloadError) as caught:
        fetch_drive_file(TRAIN, dest, mirror_fetch(mirror.url, progress=False), check=check_archive)
    message = str(caught.value)
    assert "interrupted after 1000" in message and "Run the same command again to resume" in message
    assert TRAIN.link in message and f"put it at {dest}" in message  # the manual way, to the exact path
    assert not dest.exists() and leftovers(dest.parent) == [".TrainDataset.zip.partial"]
    fetch_drive_file(TRAIN, dest, mirror_fetch(mirror.url, progress=False), check=check_archive)
    assert mirror.requests[-1] == ("TrainDataset.zip", "bytes=1000-")  # resumed, not restarted
    assert dest.read_bytes() == archive and leftovers(dest.parent) == ["TrainDataset.zip", "TrainDataset.zip.sha256"]


@pytest.mark.parametrize(
    "payload, error, words",
    [
        (b"PK\x03\x04 this is not a whole zip", DownloadError, "not a zip or tar archive"),
        (b"<!DOCTYPE html><html>Google Drive - quota exceeded</html>", DriveDownloadError, "sent a web page"),
    ],
    ids=["corrupt archive", "quota page"],
)
def test_unusable_download_is_not_kept(mirror, tmp_path, payload, error, words):
    mirror.files["TrainDataset.zip"] = payload
    dest = tmp_path / "downloads" / "TrainDataset.zip"
    with pytest.raises(error, match=words):
        fetch_drive_file(TRAIN, dest, mirror_fetch(mirror.url, progress=False), check=check_archive)
    assert leftovers(dest.parent) == []


def test_corrupt_member_of_a_whole_zip_is_caught(tmp_path):
    good = zip_bytes({"TrainDataset/image/a.png": b"x" * 5000})
    broken = bytearray(good)
    broken[good.index(b"xxxx")] ^= 0xFF  # one flipped byte inside the member: the CRC no longer matches
    archive = tmp_path / "a.zip"
    archive.write_bytes(bytes(broken))
    assert zipfile.is_zipfile(archive)
    with pytest.raises(DownloadError, match=r"member 'TrainDataset/image/a.png' is corrupt"):
        check_archive(archive)


def test_gdown_wrapper_fetches_files_and_folders(mirror, tmp_path, monkeypatch):
    gdown = fake_gdown(mirror)
    monkeypatch.setitem(sys.modules, "gdown", gdown)
    mirror.files["TrainDataset.zip"] = b"a file"
    assert gdown_fetch(TRAIN, tmp_path / "a").read_bytes() == b"a file"
    mirror.files["PolypPVT.pth"] = b"weights"
    got = gdown_fetch(DRIVE_FILES["polyp-pvt"], tmp_path / "b")  # a Drive folder: the file is found inside it
    assert got.name == "PolypPVT.pth" and got.read_bytes() == b"weights"
    assert gdown.calls == [
        ("download", TRAIN.drive_id, True),
        ("download_folder", DRIVE_FILES["polyp-pvt"].drive_id, True),
    ]


def test_drive_quota_error_says_where_to_put_the_file(mirror, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gdown", fake_gdown(mirror))
    mirror.status = 429
    dest = tmp_path / "data" / "downloads" / "TrainDataset.zip"
    with pytest.raises(DriveDownloadError) as caught:
        fetch_drive_file(TRAIN, dest)  # the default fetch: gdown
    message = str(caught.value)
    assert "Too many users have viewed or downloaded this file recently" in message and "quota" in message
    assert f"open {TRAIN.link} in a browser" in message
    assert f"folder {dest.parent}, file name TrainDataset.zip" in message
    assert leftovers(dest.parent) == []  # nothing arrived, nothing kept


def test_without_gdown_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gdown", None)  # `import gdown` raises ImportError
    with pytest.raises(DriveDownloadError, match=r"gdown is not installed.*kdas-notebooks\[colab\].*put it at"):
        fetch_drive_file(TRAIN, tmp_path / "TrainDataset.zip")


def test_pranet_archives_become_a_data_root(mirror, tmp_path):
    mirror.files.update(pranet_archives(n_train=6, tests={"Kvasir": 2, "ETIS-LaribPolypDB": 3}))
    root = prepare_pranet(tmp_path / "data", fetch=mirror_fetch(mirror.url, progress=False))
    assert root == tmp_path / "data" / "polyp" and leftovers(tmp_path / "data") == ["downloads", "polyp"]
    found = find_dataset(root)
    assert len(found["train"]) == 6 and {k: len(v) for k, v in found["test"].items()} == {
        "ETIS-LaribPolypDB": 3,
        "Kvasir": 2,
    }
    record = (root / "pranet.json").read_text()
    assert sha(mirror.files["TrainDataset.zip"]) in record and sha(mirror.files["TestDataset.zip"]) in record
    assert prepare_pranet(tmp_path / "data", fetch=mirror_fetch(mirror.url, progress=False)) == root  # kept
    assert len(mirror.requests) == 2
    (tmp_path / "kvasir" / "TrainDataset").mkdir(parents=True)  # a root that holds other data is refused
    with pytest.raises(DatasetError, match="was not unpacked by prepare_pranet"):
        prepare_pranet(tmp_path / "data", tmp_path / "kvasir", fetch=mirror_fetch(mirror.url, progress=False))


def test_pranet_archive_with_an_escaping_member_unpacks_nothing(mirror, tmp_path):
    mirror.files.update(pranet_archives(n_train=3))
    members = {"TestDataset/Kvasir/images/0.png": b"x", "../../escaped.txt": b"gotcha"}
    mirror.files["TestDataset.zip"] = zip_bytes(members)
    with pytest.raises(UnsafeArchiveError, match=r"member '\.\./\.\./escaped\.txt' would be written outside"):
        prepare_pranet(tmp_path / "data", fetch=mirror_fetch(mirror.url, progress=False))
    assert leftovers(tmp_path / "data") == ["downloads"] and not (tmp_path / "escaped.txt").exists()
    # the unusable archive went too (the next run fetches it again); the good one stays, with its checksum
    assert leftovers(tmp_path / "data" / "downloads") == ["TrainDataset.zip", "TrainDataset.zip.sha256"]


def test_official_teacher_is_checked_and_recorded(mirror, weights, teacher_file):
    data, teacher = teacher_file
    mirror.files["PolypPVT.pth"] = data
    path = prepare_polyp_pvt(fetch=mirror_fetch(mirror.url, progress=False))
    assert path == weights / "PolypPVT.pth" and path.read_bytes() == data
    assert (weights / "PolypPVT.pth.sha256").read_text().split() == [sha(data), "PolypPVT.pth"]
    assert leftovers(weights) == ["PolypPVT.pth", "PolypPVT.pth.sha256"]


def test_weights_of_the_wrong_network_are_not_kept(mirror, weights):
    torch.manual_seed(0)
    mirror.files["PolypPVT.pth"] = polyp_pvt_checkpoint(build_student())  # a B0 student, not the B2 teacher
    with pytest.raises(WeightLoadError, match=r"is not the Polyp-PVT teacher.*wrong shape.*pvt_v2_b2"):
        prepare_polyp_pvt(fetch=mirror_fetch(mirror.url, progress=False))
    assert leftovers(weights) == []


def test_interrupted_teacher_download_then_resumed(mirror, weights, teacher_file):
    data, _ = teacher_file
    mirror.files["PolypPVT.pth"], mirror.drop_after["PolypPVT.pth"] = data, len(data) // 3
    with pytest.raises(DriveDownloadError, match="interrupted"):
        prepare_polyp_pvt(fetch=mirror_fetch(mirror.url, progress=False))
    assert leftovers(weights) == [".PolypPVT.pth.partial"]
    assert prepare_polyp_pvt(fetch=mirror_fetch(mirror.url, progress=False)).read_bytes() == data
    assert leftovers(weights) == ["PolypPVT.pth", "PolypPVT.pth.sha256"]


def test_commands_prepare_weights_and_prepare_data(mirror, tmp_path, weights, teacher_file, capsys):
    from kdas_utils.cli import main

    data, _ = teacher_file
    mirror.files.update(pranet_archives(n_train=4), **{"PolypPVT.pth": data})
    into = tmp_path / "data"
    assert main(["prepare-data", "--download", "pranet", "--mirror", mirror.url, "--into", str(into)]) == 0
    assert "PraNet's split at" in capsys.readouterr().out and (into / "polyp" / "pranet.json").is_file()
    assert main(["prepare-weights", "polyp-pvt", "--mirror", mirror.url]) == 0
    assert "loads strictly into build_teacher()" in capsys.readouterr().out
    (weights / "PolypPVT.pth").unlink()
    (weights / "PolypPVT.pth.sha256").unlink()
    buffer = io.BytesIO()
    torch.save({"not": torch.zeros(1)}, buffer)
    mirror.files["PolypPVT.pth"] = buffer.getvalue()
    assert main(["prepare-weights", "polyp-pvt", "--mirror", mirror.url]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]  # beside the progress bar
    assert len(errors) == 1 and errors[0].startswith("kdas prepare-weights: error: the file fetched as PolypPVT.pth")


def test_prepare_weights_help(capsys):
    from kdas_utils.cli import main

    with pytest.raises(SystemExit) as done:
        main(["prepare-weights", "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and out.startswith("usage: kdas prepare-weights") and "polyp-pvt" in out
