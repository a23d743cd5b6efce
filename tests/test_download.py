"""The download helper, end to end over a local HTTP server on 127.0.0.1 (never the internet)."""

import hashlib
import io
import tarfile

import numpy as np
import pytest
from helpers.mirror import Mirror, png, zip_bytes
from PIL import Image

from kdas_utils.data import (
    DownloadError,
    UnsafeArchiveError,
    download,
    download_dataset,
    extract_archive,
    find_kvasir_seg_pairs,
)


class Server(Mirror):
    """The loopback mirror serving one file, ``kvasir-seg.zip``: ``payload`` is its bytes, ``url`` its address."""

    name = "kvasir-seg.zip"

    def __init__(self):
        super().__init__()
        self.url = f"{self.url}/{self.name}"

    @property
    def payload(self) -> bytes:
        return self.files[self.name]

    @payload.setter
    def payload(self, data: bytes) -> None:
        self.files[self.name] = data


@pytest.fixture
def server():
    server = Server()
    server.payload = np.random.default_rng(0).bytes(300_000)
    yield server
    server.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_and_verify(server, tmp_path):
    path = download(server.url, tmp_path / "a.bin", sha256=sha(server.payload), progress=False)
    assert path.read_bytes() == server.payload
    assert not (tmp_path / "a.bin.part").exists()
    download(server.url, path, sha256=sha(server.payload), progress=False)  # reused, not fetched
    assert len(server.requests) == 1


def test_resume_after_interruption(server, tmp_path):
    server.drop_after[server.name] = 100_000
    with pytest.raises(DownloadError, match=r"interrupted after 100000 of 300000 bytes.*run the same call again"):
        download(server.url, tmp_path / "a.bin", sha256=sha(server.payload), progress=False)
    assert (tmp_path / "a.bin.part").stat().st_size == 100_000 and not (tmp_path / "a.bin").exists()
    path = download(server.url, tmp_path / "a.bin", sha256=sha(server.payload), progress=False)
    assert server.ranges(server.name) == [None, "bytes=100000-"]
    assert path.read_bytes() == server.payload


def test_server_without_ranges_restarts(server, tmp_path):
    (tmp_path / "a.bin.part").write_bytes(b"stale bytes from another file")
    server.honour_range = False
    path = download(server.url, tmp_path / "a.bin", sha256=sha(server.payload), progress=False)
    assert server.ranges(server.name) == ["bytes=29-"] and path.read_bytes() == server.payload


def test_complete_part_file_is_finished(server, tmp_path):
    (tmp_path / "a.bin.part").write_bytes(server.payload)
    path = download(server.url, tmp_path / "a.bin", sha256=sha(server.payload), progress=False)
    assert path.read_bytes() == server.payload


def test_checksum_mismatch_keeps_nothing(server, tmp_path):
    with pytest.raises(DownloadError, match=r"sha256 is [0-9a-f]{64} but 0{64} was expected"):
        download(server.url, tmp_path / "a.bin", sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_error(server, tmp_path):
    server.status = 404
    with pytest.raises(DownloadError, match=r"HTTP 404.*Check the address"):
        download(server.url, tmp_path / "a.bin", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_oversized_part_file_fails_the_checksum(server, tmp_path):
    (tmp_path / "a.bin.part").write_bytes(server.payload + b"extra")  # beyond the end: 416
    path = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match="sha256"):
        download(server.url, path, sha256=sha(server.payload), progress=False)
    assert not path.exists()


def test_refuses_zip_member_escaping_target(tmp_path):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(zip_bytes({"ok.txt": b"1", "../evil.txt": b"2"}))
    with pytest.raises(UnsafeArchiveError, match=r"member '\.\./evil\.txt' would be written outside"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out").exists()


def test_refuses_absolute_tar_member(tmp_path):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as bundle:
        info = tarfile.TarInfo("/tmp/kdas-evil.txt")
        info.size = 1
        bundle.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(UnsafeArchiveError, match="kdas-evil.txt"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_refuses_tar_symlink_pointing_out(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as bundle:
        info = tarfile.TarInfo("data/link")
        info.type, info.linkname = tarfile.SYMTYPE, "../../etc/passwd"
        bundle.addfile(info)
    with pytest.raises(UnsafeArchiveError, match="links to '../../etc/passwd'"):
        extract_archive(archive, tmp_path / "out")


def test_extracts_safe_tar(tmp_path):
    archive = tmp_path / "ok.tar.gz"
    with tarfile.open(archive, "w:gz") as bundle:
        info = tarfile.TarInfo("TrainDataset/readme.txt")
        info.size = 2
        bundle.addfile(info, io.BytesIO(b"hi"))
    out = extract_archive(archive, tmp_path / "out")
    assert (out / "TrainDataset" / "readme.txt").read_bytes() == b"hi"


def test_not_an_archive(tmp_path):
    page = tmp_path / "page.zip"
    page.write_text("<html>quota exceeded</html>")
    with pytest.raises(DownloadError, match="not a zip or tar archive"):
        extract_archive(page, tmp_path / "out")


def test_dataset_end_to_end_with_fabricated_kvasir_release(server, tmp_path):
    rng = np.random.default_rng(1)
    members = {}
    for i in range(3):
        mask = np.zeros((40, 50), np.uint8)
        mask[10:20, 10 + i : 30] = 255
        members[f"Kvasir-SEG/images/frame{i}.jpg"] = png(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
        members[f"Kvasir-SEG/masks/frame{i}.jpg"] = png(mask)
    members["Kvasir-SEG/kavsir_bboxes.json"] = b"{}"
    server.payload = zip_bytes(members)
    with pytest.raises(DownloadError, match="no published sha256.*allow_unpinned=True"):
        download_dataset("kvasir-seg", tmp_path, url=server.url, progress=False)
    raw = download_dataset("kvasir-seg", tmp_path, url=server.url, allow_unpinned=True, progress=False)
    recorded = (tmp_path / "downloads" / "kvasir-seg.zip.sha256").read_text().split()[0]
    assert recorded == sha(server.payload)
    assert [p[0].name for p in find_kvasir_seg_pairs(raw)] == ["frame0.jpg", "frame1.jpg", "frame2.jpg"]
    # A later call verifies against the recorded checksum: a changed release is refused.
    (tmp_path / "downloads" / "kvasir-seg.zip").unlink()
    server.payload = server.payload + b"tampered"
    with pytest.raises(DownloadError, match="sha256 is"):
        download_dataset("kvasir-seg", tmp_path, url=server.url, progress=False)


def _jpeg(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=70)
    return buffer.getvalue()


def _kvasir_release(n: int) -> bytes:
    """A zip shaped like kvasir-seg.zip: ``n`` frames, masks as lossy JPEG (values near 0 and 255)."""
    rng = np.random.default_rng(2)
    members = {}
    for i in range(n):
        mask = np.zeros((40, 48), np.uint8)
        mask[8:24, 6 + i : 30] = 255
        members[f"Kvasir-SEG/images/c{i:02d}.jpg"] = _jpeg(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
        members[f"Kvasir-SEG/masks/c{i:02d}.jpg"] = _jpeg(mask)
    return zip_bytes(members)


def test_kvasir_release_becomes_a_pranet_root(server, tmp_path):
    from kdas_utils.data import DatasetError, NonBinaryMaskWarning, find_dataset, prepare_kvasir_seg, read_mask
    from kdas_utils.data.layout import kvasir_seg_to_pranet

    server.payload = _kvasir_release(10)
    with pytest.warns(NonBinaryMaskWarning, match="10 of 10 masks"):  # the release's JPEG masks
        root = prepare_kvasir_seg(tmp_path / "data", allow_unpinned=True, url=server.url, progress=False, test_count=3)
    assert root == tmp_path / "data" / "polyp" and not (tmp_path / "data" / ".polyp.partial").exists()
    found = find_dataset(root)
    assert len(found["train"]) == 7 and list(found["test"]) == ["Kvasir"] and len(found["test"]["Kvasir"]) == 3
    names = sorted(p[0].name for p in found["train"] + found["test"]["Kvasir"])
    assert names == [f"c{i:02d}.jpg" for i in range(10)]  # every frame once, none lost
    mask, binary = read_mask(found["train"][0][1], return_binary_flag=True)
    assert binary and found["train"][0][1].suffix == ".png" and set(np.unique(mask)) == {0, 1}
    # The same call again keeps the folder; another split, or a foreign folder, is refused.
    raw = tmp_path / "data" / "raw" / "kvasir-seg"
    assert kvasir_seg_to_pranet(raw, root, test_count=3) == root
    with pytest.raises(DatasetError, match="already exists"):
        kvasir_seg_to_pranet(raw, root, test_count=4)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        kvasir_seg_to_pranet(raw, tmp_path / "other", test_count=3)
    with pytest.warns(NonBinaryMaskWarning), pytest.raises(DatasetError, match="too few"):
        kvasir_seg_to_pranet(raw, tmp_path / "small", test_count=10)


@pytest.mark.filterwarnings("ignore::kdas_utils.data.NonBinaryMaskWarning")
def test_colab_offer_downloads_on_click(server, tmp_path, monkeypatch):
    from kdas_utils.notebook import offer_real_data

    monkeypatch.setenv("KDAS_HOME", str(tmp_path))
    for variable in ("KDAS_DATA_ROOT", "KDAS_WEIGHTS_DIR", "KDAS_DOWNLOAD_ROOT"):
        monkeypatch.delenv(variable, raising=False)
    assert offer_real_data() is None  # not on Colab: no offer
    server.payload = _kvasir_release(6)
    box = offer_real_data(force=True, url=server.url, progress=False, test_count=2)
    assert list(box.buttons) == ["pranet", "kvasir", "teacher"]  # no Drive outside Colab; PraNet's data first
    button = box.buttons["kvasir"]
    button.click()
    assert button.disabled and (tmp_path / "data" / "polyp" / "TestDataset" / "Kvasir" / "masks").is_dir()
    assert list(offer_real_data(force=True).buttons) == ["teacher"]  # the data is there now
    (tmp_path / "data" / "weights").mkdir()
    (tmp_path / "data" / "weights" / "PolypPVT.pth").write_bytes(b"(the official teacher)")
    assert offer_real_data(force=True) is None  # nothing left to offer
