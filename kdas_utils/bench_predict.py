"""``kdas predict`` on a colonoscopy-sized video: is the pipeline as fast as its network?

    python -m kdas_utils.bench --predict [--predict-seconds 20] [--predict-sizes 256 352]

On a video it writes first (real test frames, resized to 1280 x 1024, H.264 at 25 frames/s), for each
backend (``torch``, ``onnx``, ``onnx-int8``) and input size, each in a process of its own (so its peak
memory is its own):

- ``network_fps``: the network alone on prepared inputs, in batches of the pipeline's size, run as the
  pipeline runs it: ``lanes`` batches side by side on one thread each (ONNX Runtime: one per core), one
  at a time on every thread for PyTorch; ``network_fps_one_batch``: one batch at a time on every thread;
- ``end_to_end_fps``: ``kdas predict`` on the video (decoding, preprocessing, the network, the masks
  at the frame's size, the overlay, both videos and the CSV), and ``ratio`` = end to end / network;
- ``peak_rss_mb``: the process's peak resident memory when the pipeline ends (before the network alone
  is timed); ``bytes_per_frame`` and ``files_per_video``: what it wrote;
- ``no_outputs_fps`` and ``no_outputs_ratio``: the same pipeline with nothing written (each frame's mask at
  its size and its CSV statistics computed, no video encoded, no file): how close to the network's speed the
  decoding and the network's input alone let a run come, with ``no_outputs_cpu_ms_per_frame``.

Where the time goes: ``cpu_ms_per_frame``, the CPU a frame of the pipeline's threads while it ran
(:func:`cpu_per_frame`: the network's lanes, the reader, the writer, the rest), beside
``network_cpu_ms_alone`` (the lanes' CPU a frame with nothing else running); and ``stages``
(:func:`stage_costs`): what each step around the network costs a frame on one core, one at a time.

With ``--predict-memory``, the same pipeline on a 10-second and a 60-second clip
(``memory_ratio_60s_to_10s``). With a trained student (``--predict-weights``, an engine checkpoint), the
agreement of the ONNX backends with PyTorch's masks on the real test frames: per-frame Dice between the
masks, and the test sets' mean Dice of each (``tolerance``). A seeded student stands in otherwise: the
speed does not depend on the weights, the agreement does.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from .config import data_root
from .data import find_dataset, read_mask
from .engine import CHECKPOINT_FORMAT, save_checkpoint
from .engine.checkpoint import architecture
from .metrics import dice_at
from .models import build_student
from .predict import Predictor, predict_inputs, write_clip
from .predict.stream import Pipeline, video_frames
from .predict.writers import OVERLAY_SIZE, MaskVideo, OverlayVideo

STAGES = ("decode", "to_rgb", "prepare", "finish", "overlay", "overlay_video", "mask_video")  # stage_costs' steps
VIDEO_SIZE = (1280, 1024)  # a colonoscope's frame (width, height)
SOURCES = ((1350, 1080), (1920, 1080))  # predict_speed's other frames (width, height): as in Kvasir-SEG, full HD
RATE = 25


def write_test_video(path: Path, seconds: float, size=VIDEO_SIZE, rate: int = RATE) -> Path:
    """An H.264 MP4 of real test frames (Kvasir, CVC-ClinicDB), each resized to ``size`` and shown for
    half a second, ``seconds`` long; synthetic noise frames where the real data is missing."""
    return write_clip(_frames(size), path, frames_each=rate // 2, size=size, rate=rate, count=round(seconds * rate))


def _frames(size) -> list:
    try:
        tests = find_dataset(data_root())["test"]
    except Exception:  # no real data here: noise frames (the speed does not depend on the content)
        rng = np.random.default_rng(0)
        return [rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8) for _ in range(8)]
    return [image for pairs in tests.values() for image, _ in pairs[:10]]


def seeded_student(path: Path, image_size: int) -> Path:
    """An engine checkpoint of a seeded student (its speed is the trained one's)."""
    torch.manual_seed(0)
    model = build_student().eval()
    state = {"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "arch": architecture(model)}
    return save_checkpoint(state | {"config": {"image_size": image_size}}, path)


def seeded_weights(folder: Path, sizes=(256,)) -> tuple[Path, float]:
    """A seeded student (:func:`seeded_student`, in ``folder``) and the threshold that leaves 15% of a real frame
    polyp at the smallest of ``sizes`` (a seeded student calls every pixel polyp at 0.5, and the overlay's cost
    grows with the mask)."""
    weights = seeded_student(Path(folder) / "student.pt", max(sizes))
    first = _frames(VIDEO_SIZE)[0]  # a real frame's path, or noise
    probability = Predictor(weights, backend="torch", size=min(sizes), device="cpu").predict(first).probability
    return weights, float(np.quantile(probability, 0.85))


def measure(
    weights: Path, video: Path, backend: str, size: int, batch: int, threshold: float = 0.5, repeats: int = 5
) -> dict:
    """One backend and size, in this process: the whole pipeline on ``video`` (its peak memory is the
    process's then), the same pipeline with nothing written (``no_outputs_*``), then the network alone, as the
    pipeline runs it (``lanes`` batches side by side, each
    ``3 * repeats`` times) and one batch at a time (the median of ``repeats``)."""
    predictor = Predictor(weights, backend=backend, size=size, device="cpu", threshold=threshold)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        report = predict_inputs(predictor, [video], out, batch_size=batch, progress=False, log=None)
        files = [p for p in out.rglob("*") if p.is_file()]
        written = sum(p.stat().st_size for p in files)
    end_to_end, peak = report.frames / report.seconds, peak_rss_mb()
    bare = Pipeline(predictor, batch).run(video_frames(video), lambda frame, prediction: prediction.row())
    inputs = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
    predictor.run(inputs)  # warm-up
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        predictor.run(inputs)
        seconds.append(time.perf_counter() - began)
    one_batch_fps = batch / float(np.median(seconds))
    lanes = predictor.lanes > 1
    network_fps, alone_cpu = lanes_fps(predictor, inputs, 3 * repeats) if lanes else (one_batch_fps, None)
    return {
        "backend": predictor.backend,
        "size": size,
        "batch": batch,
        "frames": report.frames,
        "network_fps": network_fps,
        "lanes": predictor.lanes,
        "network_fps_one_batch": one_batch_fps,
        "end_to_end_fps": end_to_end,
        "ratio": end_to_end / network_fps,
        "pipeline_network_fps": report.frames / report.network_seconds,
        "cpu_ms_per_frame": cpu_per_frame(report.cpu_seconds, report.frames, lanes),
        "network_cpu_ms_alone": alone_cpu,
        "no_outputs_fps": bare.frames_per_second,
        "no_outputs_ratio": bare.frames_per_second / network_fps,
        "no_outputs_cpu_ms_per_frame": cpu_per_frame(bare.cpu_seconds, bare.frames, lanes),
        "peak_rss_mb": peak,
        "bytes_per_frame": written / max(report.frames, 1),
        "files_per_video": len([p for p in files if p.name != "predictions.csv"]),
    }


def stage_costs(
    video: Path, size: int, threshold: float = 0.5, frames: int = 50, overlay_size: int | None = OVERLAY_SIZE
) -> dict:
    """Milliseconds a frame of each step of ``kdas predict`` around the network, one at a time on one core
    (OpenCV and torch on one thread), on the first ``frames`` frames of ``video``: ``decode`` (FFmpeg),
    ``to_rgb`` (its YUV frame to an RGB array), ``prepare`` (resize and normalise), ``finish`` (the
    probability map back to the frame's size, thresholded), ``overlay`` (frame and mask resized to the overlay
    video's size, ``overlay_size``, and the mask drawn), and the two encoders, ``overlay_video`` and
    ``mask_video``; ``total`` is their sum. The masks are a seeded
    student's at ``threshold``, as in :func:`predict_speed`."""
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    spent = dict.fromkeys(STAGES, 0.0)

    def timed(name, work, *args):
        began = time.perf_counter()
        result = work(*args)
        spent[name] += time.perf_counter() - began
        return result

    try:
        with av.open(str(video)) as container, tempfile.TemporaryDirectory() as tmp:
            student = seeded_student(Path(tmp) / "student.pt", size)
            predictor = Predictor(student, backend="torch", size=size, device="cpu", threshold=threshold)
            stream = container.streams.video[0]
            overlays = OverlayVideo(Path(tmp) / "o.mp4", RATE, overlay_size)
            masks = MaskVideo(Path(tmp) / "m.mov", RATE)
            decoded, count = container.decode(stream), 0
            while count < frames:
                frame = timed("decode", next, decoded, None)
                if frame is None:
                    break
                rgb = timed("to_rgb", _rgb, frame)
                batch = timed("prepare", predictor.prepare, rgb)[None]
                prediction = timed("finish", predictor.finish, rgb, predictor.run(batch)[0])
                drawn = timed("overlay", overlays.draw, rgb, prediction.mask)
                timed("overlay_video", overlays.add, drawn)
                timed("mask_video", masks.write, prediction.mask)
                count += 1
            overlays.close()
            masks.close()
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
    costs = {name: 1000 * seconds / max(count, 1) for name, seconds in spent.items()}
    return costs | {"total": sum(costs.values()), "frames": count, "size": size, "overlay_size": overlays.size}


def lanes_fps(predictor: Predictor, inputs: np.ndarray, repeats: int, rounds: int = 3) -> tuple[float, float]:
    """The network's frames/s as :class:`~kdas_utils.predict.stream.Pipeline` runs it: ``predictor.lanes``
    threads, each putting ``inputs`` through ``run(..., lane=True)`` ``repeats`` times, side by side; and the
    CPU milliseconds a frame took (the lanes' threads: a one-thread session computes in its caller's). Each the
    median of ``rounds`` (one round of about 2 s: fp32 ONNX at 256 px gave 80.2 and 69.6 frames/s in two bench runs)."""
    lanes = predictor.lanes
    frames = lanes * repeats * len(inputs)

    def lane(_) -> float:
        cpu = time.thread_time()
        for _ in range(repeats):
            predictor.run(inputs, lane=True)
        return time.thread_time() - cpu

    fps, cpu_ms = [], []
    with ThreadPoolExecutor(lanes) as pool:
        list(pool.map(lambda _: predictor.run(inputs, lane=True), range(lanes)))  # warm-up: each lane's session
        for _ in range(rounds):
            began = time.perf_counter()
            cpu_ms.append(1000 * sum(pool.map(lane, range(lanes))) / frames)
            fps.append(frames / (time.perf_counter() - began))
    return float(np.median(fps)), float(np.median(cpu_ms))


def cpu_per_frame(cpu_seconds: dict, frames: int, lanes: bool) -> dict:
    """CPU milliseconds a frame of a pipeline run (:attr:`~kdas_utils.predict.PipelineReport.cpu_seconds`):
    ``network`` (with ``lanes``; PyTorch computes on a thread pool of its own, counted in ``other`` then),
    ``read``, ``write``, ``other`` (FFmpeg's decoding threads, the thread that gathers batches, a backend's
    pool) and ``all`` (the process)."""
    per = {part: 1000 * seconds / max(frames, 1) for part, seconds in cpu_seconds.items()}
    network = per["network"] if lanes else None
    other = per["process"] - per["read"] - per["write"] - (network or 0.0)
    return {"network": network, "read": per["read"], "write": per["write"], "other": other, "all": per["process"]}


def _cpu_line(row: dict) -> str:
    cpu, alone = row["cpu_ms_per_frame"], row["network_cpu_ms_alone"]
    network = f"network {cpu['network']:.1f} ms (alone {alone:.1f}), " if cpu["network"] is not None else ""
    return network + ", ".join(f"{part} {cpu[part]:.1f}" for part in ("read", "write", "other", "all"))


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: ``VmHWM`` of ``/proc/self/status`` on Linux, whose
    high-water mark starts afresh at ``exec``; elsewhere ``ru_maxrss``, which on Linux would also count
    the memory of the process that started this one (it survives ``exec``: a child of a 4 GB bench
    reported 4 GB whatever it used)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 1024 * 1024)


def _in_child(weights: Path, video: Path, backend: str, size: int, batch: int, threshold: float) -> dict:
    """:func:`measure` in a fresh process, for a peak memory of its own."""
    code = (
        "import json, sys; from pathlib import Path; from kdas_utils.bench_predict import measure; "
        "weights, video, backend, size, batch, threshold = sys.argv[1:]; "
        "print('RESULT ' + json.dumps(measure(Path(weights), Path(video), backend, int(size), int(batch), "
        "float(threshold))))"
    )
    argv = [str(weights), str(video), backend, str(size), str(batch), repr(threshold)]
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{backend} at {size} px failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.split("RESULT ", 1)[1])


def predict_speed(
    weights: Path | None = None,
    seconds: float = 20,
    sizes=(256, 352),
    backends=("torch", "onnx", "onnx-int8"),
    batch: int = 8,
    memory: bool = False,
    memory_seconds: tuple[float, float] = (10, 60),
    sources: tuple = (),
) -> dict:
    """The ``predict`` section of the bench's JSON: ``{"<backend>-<size>": measure(...)}``, ``stages``
    (:func:`stage_costs` at the smallest size), plus ``memory`` (10-second against 60-second clip) with
    ``memory``, and ``sources``: ``{"<width>x<height>": measure(...)}``, fp32 ONNX (the default on a CPU) at
    the smallest size on a clip of each of ``sources`` (``(width, height)``, e.g. :data:`SOURCES`: other
    colonoscopes' frames; the overlay video's 640 px is exactly half of the main clip's 1280). Without
    ``weights``, a seeded student and its threshold (:func:`seeded_weights`)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video = write_test_video(tmp / "clip.mp4", seconds)
        weights, threshold = (weights, 0.5) if weights is not None else seeded_weights(tmp, sizes)
        result = {}
        for size in sizes:
            for backend in backends:
                Predictor(weights, backend=backend, size=size, device="cpu")  # the ONNX export, cached, before timing
                key = f"{backend}-{size}"
                result[key] = _in_child(weights, video, backend, size, batch, threshold)
                row = result[key]
                print(
                    f"{key}: network {row['network_fps']:.1f} frames/s, end to end {row['end_to_end_fps']:.1f} "
                    f"({row['ratio']:.2f}x), peak {row['peak_rss_mb']:.0f} MB, {row['bytes_per_frame'] / 1e3:.1f} kB "
                    f"and {row['files_per_video']} files; nothing written {row['no_outputs_fps']:.1f} "
                    f"({row['no_outputs_ratio']:.2f}x); CPU a frame: " + _cpu_line(row),
                    flush=True,
                )
        result["stages"] = stages = stage_costs(video, min(sizes), threshold)
        print(
            f"around the network, one core, {stages['size']} px, overlay video {stages['overlay_size']}: "
            + ", ".join(f"{k} {v:.1f}" for k, v in stages.items() if k in STAGES)
            + " ms a frame",
            flush=True,
        )
        if sources:
            result["sources"] = {}
        for width, height in sources:
            clip = write_test_video(tmp / f"clip-{width}x{height}.mp4", seconds, size=(width, height))
            row = _in_child(weights, clip, "onnx", min(sizes), batch, threshold)
            result["sources"][f"{width}x{height}"] = row
            print(
                f"onnx-{min(sizes)} on a {width} x {height} clip: network {row['network_fps']:.1f} frames/s, "
                f"end to end {row['end_to_end_fps']:.1f} ({row['ratio']:.2f}x); CPU a frame: " + _cpu_line(row),
                flush=True,
            )
        if memory:
            fastest = max((r for r in result.values() if "end_to_end_fps" in r), key=lambda r: r["end_to_end_fps"])
            short, long = memory_seconds
            clips = {n: write_test_video(tmp / f"clip-{n}s.mp4", n) for n in (short, long)}
            rss = {
                n: _in_child(weights, clips[n], fastest["backend"], fastest["size"], batch, threshold)["peak_rss_mb"]
                for n in clips
            }
            result["memory"] = {
                "backend": fastest["backend"],
                "size": fastest["size"],
                "seconds": [short, long],
                "peak_rss_mb_short": rss[short],
                "peak_rss_mb_long": rss[long],
                "memory_ratio_long_to_short": rss[long] / rss[short],
            }
            print(f"memory: {short:g} s clip {rss[short]:.0f} MB, {long:g} s clip {rss[long]:.0f} MB", flush=True)
    return result


def tolerance(weights: Path, sizes=(256, 352), backends=("onnx", "onnx-int8")) -> dict:
    """Each backend against PyTorch on the real test frames at each size: the mean over frames of the Dice
    between the two masks (``mask_dice_to_torch``; 1 for a frame where both are empty), and each one's mean
    Dice against the true masks per test set."""
    tests = find_dataset(data_root())["test"]
    result = {}
    for size in sizes:
        reference = Predictor(weights, backend="torch", size=size, device="cpu")
        ours = {b: Predictor(weights, backend=b, size=size, device="cpu") for b in backends}
        agreement = {b: [] for b in backends}
        scores = {b: {} for b in ("torch", *backends)}
        for name, pairs in tests.items():
            per = {b: [] for b in scores}
            for image, mask_path in pairs:
                truth = torch.from_numpy(read_mask(mask_path)).float()[None, None]
                base = reference.predict(image)
                per["torch"].append(_dice(base.mask, truth))
                for b, predictor in ours.items():
                    mask = predictor.predict(image).mask
                    agreement[b].append(_agreement(mask, base.mask))
                    per[b].append(_dice(mask, truth))
            for b in scores:
                scores[b][name] = float(np.mean(per[b]))
        for b in backends:
            result[f"{b}-{size}"] = {
                "mask_dice_to_torch": float(np.mean(agreement[b])),
                "mask_dice_to_torch_min": float(np.min(agreement[b])),
                "test_dice": scores[b],
                "torch_test_dice": scores["torch"],
                "largest_test_dice_change": max(abs(scores[b][n] - scores["torch"][n]) for n in scores[b]),
            }
    return result


def _agreement(mask: np.ndarray, reference: np.ndarray) -> float:
    """The Dice between two predictors' masks of one frame, 1 when both are empty: two backends that both
    find no polyp agree (the PraNet rule, 0 for an empty prediction of an empty truth, is for scoring)."""
    if not mask.any() and not reference.any():
        return 1.0
    return _dice(mask, torch.from_numpy(reference).float()[None, None])


def _dice(mask: np.ndarray, truth: torch.Tensor) -> float:
    return float(dice_at(torch.from_numpy(mask).float()[None, None], truth).item())


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")
