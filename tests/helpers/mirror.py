"""Helpers of the download tests: a mirror on 127.0.0.1, made-up PraNet archives and weight files,
and a stand-in for ``gdown`` that fetches from the mirror. Nothing here touches the internet."""

from __future__ import annotations

import io
import threading
import types
import urllib.error
import urllib.request
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from kdas_utils.data import DRIVE_FILES
from kdas_utils.kdas.remap import to_polyp_pvt_keys, to_pvt_release_keys


class Mirror:
    """Serves ``files[name]`` at ``<url>/<name>``, with Range requests (416 past the end; ignored
    when ``honour_range`` is false, as some servers do), an optional early hang-up per file
    (``drop_after[name]`` bytes, once) and an optional error status for every request."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.drop_after: dict[str, int] = {}
        self.status: int | None = None
        self.honour_range = True
        self.requests: list[tuple[str, str | None]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                owner.requests.append((name, self.headers.get("Range")))
                if owner.status or name not in owner.files:
                    self.send_error(owner.status or 404)
                    return
                data, start = owner.files[name], 0
                wanted = self.headers.get("Range")
                if wanted and owner.honour_range:
                    start = int(wanted.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = owner.drop_after.pop(name, None)
                self.wfile.write(body if cut is None else body[:cut])
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def ranges(self, name: str) -> list[str | None]:
        """The Range header of each request for ``name``, in order (``None``: the whole file)."""
        return [wanted for asked, wanted in self.requests if asked == name]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _frame(rng, i: int) -> tuple[bytes, bytes]:
    mask = np.zeros((40, 48), np.uint8)
    mask[8:24, 6 + i % 10 : 30] = 255
    return png(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)), png(mask)


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def pranet_archives(n_train: int = 20, tests: dict[str, int] | None = None) -> dict[str, bytes]:
    """Archives shaped like PraNet's: ``TrainDataset.zip`` holds ``TrainDataset/{image,mask}/`` (PraNet's
    folder names), ``TestDataset.zip`` holds ``TestDataset/<set>/{images,masks}/``; small random frames."""
    rng = np.random.default_rng(0)
    train = {}
    for i in range(n_train):
        image, mask = _frame(rng, i)
        train[f"TrainDataset/image/{i}.png"], train[f"TrainDataset/mask/{i}.png"] = image, mask
    test = {}
    for name, count in (tests or {"Kvasir": 2, "CVC-ClinicDB": 2}).items():
        for i in range(count):
            image, mask = _frame(rng, i)
            test[f"TestDataset/{name}/images/{i}.png"], test[f"TestDataset/{name}/masks/{i}.png"] = image, mask
    return {"TrainDataset.zip": zip_bytes(train), "TestDataset.zip": zip_bytes(test)}


def saved(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def release_backbone(model) -> bytes:
    """``model.backbone`` as a PVTv2 release file (``patch_embed1.``, ``block1.0.``, a classifier head)."""
    state = to_pvt_release_keys(model.backbone.state_dict())
    width = model.backbone.feature_info.channels()[-1]
    state["head.weight"], state["head.bias"] = torch.zeros(1000, width), torch.zeros(1000)
    return saved(state)


def polyp_pvt_checkpoint(model) -> bytes:
    """``model`` as an official Polyp-PVT-format checkpoint (``PolypPVT.pth``)."""
    return saved(to_polyp_pvt_keys(model.state_dict()))


class FileURLRetrievalError(Exception):
    """What gdown raises when Drive refuses a file."""


def fake_gdown(mirror: Mirror) -> types.ModuleType:
    """A stand-in for the ``gdown`` module with its two functions the series calls, ``download(id=,
    output=, quiet=, resume=)`` and ``download_folder(id=, output=, quiet=, resume=)``: each Drive id of
    :data:`~kdas_utils.data.DRIVE_FILES` is served as its file name by ``mirror``. A mirror that answers
    with an error makes it raise gdown's quota error."""
    by_id = {item.drive_id: item.filename for item in DRIVE_FILES.values()}
    module = types.ModuleType("gdown")
    module.calls = []

    def fetch(drive_id: str, output: Path) -> None:
        try:
            with urllib.request.urlopen(f"{mirror.url}/{by_id[drive_id]}", timeout=10) as response:
                output.write_bytes(response.read())
        except urllib.error.HTTPError as error:
            raise FileURLRetrievalError(
                "Failed to retrieve file url: Too many users have viewed or downloaded this file recently. "
                f"Please try accessing the file again later. ({error.code})"
            ) from error

    def download(id=None, output=None, quiet=False, resume=False, **_):
        module.calls.append(("download", id, resume))
        fetch(id, Path(output))
        return output

    def download_folder(id=None, output=None, quiet=False, resume=False, **_):
        module.calls.append(("download_folder", id, resume))
        target = Path(output) / "Polyp-PVT model" / by_id[id]  # gdown keeps the folder's own structure
        target.parent.mkdir(parents=True, exist_ok=True)
        fetch(id, target)
        return [str(target)]

    module.download, module.download_folder = download, download_folder
    return module
