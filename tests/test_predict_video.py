"""``kdas predict`` on videos as a stream: a run stopped part-way (Ctrl-C, or killed) leaves a playable
overlay and the rows of the frames done, ``--resume`` finishes it as one straight run would, memory does
not grow with the video's length, a live stream over the loopback interface, and the weight files a user
has. The networks are seeded students (no trained weights can be had here)."""

from __future__ import annotations

import csv
import functools
import http.server
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from kdas_utils.bench_predict import cpu_per_frame
from kdas_utils.cli import main
from kdas_utils.engine import CHECKPOINT_FORMAT, save_checkpoint
from kdas_utils.engine.checkpoint import architecture
from kdas_utils.models import WeightLoadError, build_student, load_network
from kdas_utils.predict import (
    CSV_NAME,
    MaskVideo,
    OverlayVideo,
    Predictor,
    count_frames,
    overlay_size,
    read_masks,
)
from kdas_utils.predict.stream import Frame, Pipeline
from kdas_utils.predict.writers import monob_frame, shrink

SIZE = 64  # small: the network is not what these tests are about


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(5)
    return build_student().eval()


@pytest.fixture(scope="module")
def weights(student, tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "best.pt"
    state = {"format": CHECKPOINT_FORMAT, "model": student.state_dict(), "arch": architecture(student)}
    return save_checkpoint(state | {"config": {"image_size": SIZE}}, path)


@pytest.fixture(scope="module")
def frames(real_root) -> list[np.ndarray]:
    images = sorted((real_root / "TestDataset" / "CVC-ClinicDB" / "images").iterdir())[:8]
    return [np.asarray(Image.open(p).convert("RGB").resize((192, 160))) for p in images]


@pytest.fixture(scope="module")
def threshold(weights, frames) -> float:
    """A threshold inside the seeded network's probabilities (near 0.58 everywhere), so masks are partial."""
    return float(np.quantile(Predictor(weights, backend="torch", device="cpu").predict(frames[0]).probability, 0.7))


def write_video(path: Path, frames: list[np.ndarray], count: int, rate: int = 25) -> Path:
    """``count`` frames cycling through ``frames``, lossless (FFV1 in Matroska)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "bgr0"
        for index in range(count):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frames[index % len(frames)], format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def rows_of(out: Path) -> list[dict]:
    with open(out / CSV_NAME, newline="") as handle:
        return list(csv.DictReader(handle))


def decoded(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_the_overlay_video_is_640_px_at_most_and_the_mask_video_gives_every_mask_back_exactly(tmp_path):
    rng = np.random.default_rng(0)
    shape = (1025, 1283)  # odd sides, larger than the overlay video
    masks = [np.zeros(shape, bool), rng.random(shape) < 0.3, np.ones(shape, bool)]
    masks.append(np.pad(np.ones((400, 500), bool), ((300, 325), (200, 583))))
    frame = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    overlays, mask_video = OverlayVideo(tmp_path / "o.mp4", 25), MaskVideo(tmp_path / "m.mov", 25)
    for mask in masks:
        overlays.write(frame, mask)
        mask_video.write(mask)
    overlays.close(), mask_video.close()
    with av.open(str(tmp_path / "o.mp4")) as container:
        sizes = [(f.width, f.height) for f in container.decode(video=0)]
    assert sizes == [(640, 512)] * 4 == [overlay_size(1283, 1025)] * 4
    back = list(read_masks(tmp_path / "m.mov"))
    assert len(back) == 4 and all(np.array_equal(a, b) for a, b in zip(back, masks))
    assert overlay_size(160, 128) == (160, 128) and overlay_size(1283, 1025, 0) == (1284, 1026)
    assert overlay_size(1024, 1280) == (512, 640)  # the longest side, whichever it is


@pytest.mark.parametrize("source", [(1280, 1024), (1350, 1080), (1225, 966), (1920, 1080)])
def test_the_overlay_frame_is_shrunk_as_inter_area_makes_it_at_any_ratio(frames, source):
    """OpenCV's INTER_AREA is slow at any ratio but exactly half (4.6 ms a 1350 x 1080 frame); ``shrink``
    halves, then interpolates, to the same picture: exactly at half, else within half a grey level on average
    and 8 at most (taking every other pixel, INTER_NEAREST, is 0.8 to 1.0 off on average, up to 49)."""
    rgb = cv2.resize(frames[0], source, interpolation=cv2.INTER_CUBIC)  # a real frame at a colonoscope's size
    size = overlay_size(*source)
    ours, area = shrink(rgb, size), cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    assert ours.shape == area.shape == (size[1], size[0], 3) and ours.dtype == np.uint8
    difference = np.abs(ours.astype(int) - area.astype(int))
    if source == (1280, 1024):
        assert difference.max() == 0
    else:
        assert difference.mean() < 0.5 and difference.max() <= 8, (difference.mean(), difference.max())


# The run to be stopped must still be mid-video when the signal lands, however fast the machine and however
# late the test process gets the CPU to send it: a run of small frames once finished all 150 between the 40th
# row and the signal, and once more (on a loaded machine) when the network was only slowed to 10 batches a
# second. So its network takes 0.1 s a batch for 12 batches (48 frames) and then waits until it is stopped,
# in short sleeps: a process-directed SIGINT may land on another thread, and the main thread raises
# KeyboardInterrupt only once it wakes (one long sleep kept a stopped run waiting for an hour).
SLOW = """
import itertools, time
from kdas_utils.predict import predictor as p
run, calls = p.Predictor.run, itertools.count()
def slow(self, x, lane=False):
    time.sleep(0.1)
    while next(calls) >= 12:
        time.sleep(0.1)
    return run(self, x, lane)
p.Predictor.run = slow
"""


# A terminal's process gets Ctrl-C. A test run started in the background of a script (`make test &`, as CI may
# start it) inherits SIGINT *ignored* (a shell without job control ignores it in background commands), and
# Python then installs no KeyboardInterrupt handler: the stopped run never stopped (two CI runs, 2026-12-07).
TERMINAL = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def kdas(*argv, slow: bool = False, **kwargs) -> subprocess.Popen:
    """The installed command in a process of its own (what a user's Ctrl-C or a crash stops)."""
    code = (
        TERMINAL + (SLOW if slow else "") + "import sys; from kdas_utils.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, argv)], env=env, text=True, **kwargs)


def wait_for_rows(out: Path, at_least: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ((out / CSV_NAME).exists() and len(rows_of(out)) >= at_least):
        assert process.poll() is None, "the run ended before it could be stopped"
        assert time.monotonic() < deadline, "no rows were written"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "killed"])
def test_a_stopped_video_is_playable_and_resume_finishes_it_as_a_straight_run(
    how, weights, frames, threshold, tmp_path
):
    video = write_video(tmp_path / "clip.mkv", frames, 150)
    common = ["--weights", weights, "--backend", "torch", "--threshold", repr(threshold), "--batch-size", "4"]
    straight = tmp_path / "straight"
    assert kdas("predict", video, "--out", straight, *common).wait(timeout=300) == 0

    out = tmp_path / "out"
    run = kdas("predict", video, "--out", out, *common, slow=True, stderr=subprocess.PIPE)
    try:
        wait_for_rows(out, 40, run)
        run.send_signal(signal.SIGINT if how == "ctrl-c" else signal.SIGKILL)
        status = run.wait(timeout=120)
    finally:  # a run that did not stop is not left behind waiting for ever
        if run.poll() is None:
            run.kill()
    rows = rows_of(out)
    done = [r for r in rows if r["frame"]]
    assert 40 <= len(done) < 150 and [int(r["frame"]) for r in done] == list(range(len(done)))
    playable = decoded(out / "clip_overlay.mp4")  # plays, up to the last whole fragment (a second) when killed
    if how == "ctrl-c":
        assert status == 130 and "--resume" in run.stderr.read()
        assert rows[-1]["error"].startswith(f"stopped after frame {len(done) - 1} (interrupted)")
        assert playable == len(done) == count_frames(out / "clip_masks.mov")
    else:
        assert status == -signal.SIGKILL and not rows[-1]["error"]
        assert len(done) - 50 <= playable <= len(done)

    assert kdas("predict", video, "--out", out, *common, "--resume").wait(timeout=300) == 0
    rows = rows_of(out)
    assert [int(r["frame"]) for r in rows] == list(range(150)) and not any(r["error"] for r in rows)
    assert decoded(out / "clip_overlay.mp4") == 150
    resumed, reference = list(read_masks(out / "clip_masks.mov")), list(read_masks(straight / "clip_masks.mov"))
    assert len(resumed) == 150
    differ = np.mean([np.mean(a != b) for a, b in zip(resumed, reference)])
    assert differ < 1e-3  # the same masks, up to pixels at the threshold
    assert sorted(p.name for p in out.iterdir()) == ["clip_masks.mov", "clip_overlay.mp4", CSV_NAME]


MEMORY_RUN = """
import resource, sys
from kdas_utils.predict import Predictor, predict_inputs
predictor = Predictor(sys.argv[1], backend="torch", device="cpu", threshold=float(sys.argv[4]))
predict_inputs(predictor, [sys.argv[2]], sys.argv[3], batch_size=4, progress=False, log=None)
print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_memory_does_not_grow_with_the_length_of_the_video(weights, frames, threshold, tmp_path):
    peaks = {}
    big = [np.asarray(Image.fromarray(f).resize((640, 512))) for f in frames]
    for count in (100, 600):
        video = write_video(tmp_path / f"clip-{count}.mkv", big, count)
        code = MEMORY_RUN
        done = subprocess.run(
            [sys.executable, "-c", code, str(weights), str(video), str(tmp_path / f"out-{count}"), repr(threshold)],
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert done.returncode == 0, done.stderr[-3000:]
        peaks[count] = int(done.stdout.split("PEAK ")[1])
        assert decoded(tmp_path / f"out-{count}" / f"clip-{count}_overlay.mp4") == count
    assert peaks[600] <= 1.1 * peaks[100], peaks  # six times the frames, within 10% of the memory


def test_the_package_state_dict_loads_as_the_engine_checkpoint(student, weights, frames, tmp_path, capsys):
    own = tmp_path / "student_state.pth"
    torch.save(student.state_dict(), own)
    model = load_network(own)
    assert model.backbone_name == "pvt_v2_b0" and "state_dict of the student" in model.weights_source
    a = Predictor(weights, backend="torch", device="cpu").predict(frames[0])
    b = Predictor(own, backend="torch", size=SIZE, device="cpu").predict(frames[0])
    assert np.abs(a.probability - b.probability).max() < 1e-5
    Image.fromarray(frames[0]).save(tmp_path / "frame.png")
    argv = [
        "predict",
        str(tmp_path / "frame.png"),
        "--weights",
        str(own),
        "--size",
        str(SIZE),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main([*argv, "--backend", "torch"]) == 0
    broken = {k: v for k, v in student.state_dict().items() if not k.startswith("head")}
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(WeightLoadError, match="broken.pth: a state_dict that does not fit the student"):
        load_network(tmp_path / "broken.pth")
    torch.save({"something": torch.zeros(3)}, tmp_path / "other.pth")
    assert main([*argv[:3], str(tmp_path / "other.pth"), *argv[4:]]) == 2
    error = capsys.readouterr().err
    assert "other.pth" in error and "--checkpoint" not in error and "state_dict of build_student()" in error


@pytest.mark.slow
def test_a_live_stream_over_the_loopback_interface(weights, frames, threshold, tmp_path, capsys):
    served = tmp_path / "served"
    served.mkdir()
    write_video(served / "live.mkv", frames, 40)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/live.mkv"
        out = tmp_path / "out"
        argv = ["predict", "--stream", url, "--max-frames", "12", "--weights", str(weights), "--out", str(out)]
        assert main([*argv, "--backend", "torch", "--threshold", repr(threshold)]) == 0
    finally:
        server.shutdown()
    printed = capsys.readouterr().out
    assert "latency from decoding to writing: median" in printed
    rows = rows_of(out)
    assert 1 <= len(rows) <= 12 and all(float(r["latency_ms"]) > 0 for r in rows)
    assert all(r["input"] == url for r in rows) and decoded(out / "live_overlay.mp4") == len(rows)
    assert count_frames(out / "live_masks.mov") == len(rows)


def test_onnx_runtime_is_the_default_on_the_cpu(weights, frames, tmp_path, capsys):
    Image.fromarray(frames[0]).save(tmp_path / "frame.png")
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "frame.png"), "--weights", str(weights), "--out", str(out)]) == 0
    assert f"at {SIZE} px on onnx" in capsys.readouterr().out
    onnx = Predictor(weights, device="cpu")
    assert onnx.backend == "onnx" and onnx.network.path.parent.name == "onnx-cache"
    torch_run = Predictor(weights, backend="torch", device="cpu")
    assert np.abs(onnx.predict(frames[1]).probability - torch_run.predict(frames[1]).probability).max() < 1e-4
    assert Predictor(weights, device="cpu").network.path == onnx.network.path  # exported once, then cached


def test_batches_side_by_side_come_back_in_order_with_the_probabilities_of_one_batch_at_a_time(weights, frames):
    onnx = Predictor(weights, backend="onnx", device="cpu", threads=2)  # two cores' worth of lanes, on any machine
    assert onnx.lanes == 2 and Predictor(weights, backend="torch", device="cpu").lanes == 1
    video = [Frame(i, i / 25, frames[i % len(frames)]) for i in range(22)]  # 6 batches of 4, the last short

    def run(lanes):
        got = []
        report = Pipeline(onnx, batch_size=4, lanes=lanes).run(
            [Frame(f.index, f.seconds, f.rgb) for f in video], lambda frame, p: got.append((frame.index, p))
        )
        return report, got

    (one, alone), (two, together) = run(1), run(2)
    assert [i for i, _ in together] == list(range(22)) == [i for i, _ in alone]
    assert two.frames == one.frames == 22 and two.network_seconds > 0
    for (_, a), (_, b) in zip(alone, together):  # one thread against two may round differently: a tolerance
        assert np.abs(a.probability - b.probability).max() < 1e-4


def test_the_pipeline_says_where_the_cpu_went_and_its_parts_fit_in_the_process(weights, frames):
    onnx = Predictor(weights, backend="onnx", device="cpu", threads=2)
    video = [Frame(i, i / 25, frames[i % len(frames)]) for i in range(16)]
    report = Pipeline(onnx, batch_size=4, lanes=2).run(video, lambda frame, prediction: None)
    cpu = report.cpu_seconds
    assert set(cpu) == {"network", "read", "write", "process"}
    assert cpu["network"] > 0 and cpu["read"] > 0 and cpu["write"] > 0  # 16 inputs prepared, 16 maps resized
    assert cpu["network"] + cpu["read"] + cpu["write"] <= cpu["process"]  # threads of this process, within the run
    per = cpu_per_frame(cpu, report.frames, lanes=True)
    assert per["all"] == pytest.approx(1000 * cpu["process"] / 16)
    assert per["network"] + per["read"] + per["write"] + per["other"] == pytest.approx(per["all"])
    assert cpu_per_frame(cpu, report.frames, lanes=False)["network"] is None  # a backend's own pool is not counted


def test_an_error_in_a_lane_stops_the_run_with_that_error_after_the_frames_before_it(weights, frames):
    onnx = Predictor(weights, backend="onnx", device="cpu", threads=2)
    calls, run = itertools.count(), onnx.run

    def failing(batch, lane=False):
        if next(calls) == 2:
            raise RuntimeError("the third batch failed")
        return run(batch, lane)

    onnx.run = failing
    written = []
    with pytest.raises(RuntimeError, match="third batch"):
        Pipeline(onnx, batch_size=2).run(
            [Frame(i, i / 25, frames[i % len(frames)]) for i in range(12)], lambda f, p: written.append(f.index)
        )
    assert written == [0, 1, 2, 3]  # the two batches before it, nothing after


def test_a_mask_frame_holds_the_bytes_of_ffmpegs_own_conversion_at_any_width():
    rng = np.random.default_rng(3)
    for height, width in [(5, 7), (288, 384), (966, 1225)]:
        mask = rng.random((height, width)) > 0.7
        ours = monob_frame(mask)
        ffmpeg = av.VideoFrame.from_ndarray(mask.astype(np.uint8) * 255, format="gray").reformat(format="monob")
        pixels = [  # the bits of the frame's pixels, not the padding after each row's last pixel
            np.unpackbits(np.frombuffer(f.planes[0], np.uint8).reshape(height, -1), axis=1)[:, :width]
            for f in (ours, ffmpeg)
        ]
        assert (ours.width, ours.height) == (width, height) and np.array_equal(*pixels)
        assert np.array_equal(pixels[0], mask)
