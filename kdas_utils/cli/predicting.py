"""``kdas predict``: frames, folders, videos and live streams."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..arguments import (
    image_size,
    non_negative_int,
    positive_int,
    threshold,
)
from ..config import (
    get_profile,
    runs_dir,
)
from ..errors import UsageError
from ..predict import BACKENDS, OVERLAY_SIZE, Predictor, predict_inputs, stream_source
from .common import (
    profile_argument,
)


def _predict(args) -> int:
    profile = get_profile(args.profile)
    if not args.inputs and not args.stream:
        raise UsageError("give image or video files or folders (INPUT ...), or --stream URL_OR_DEVICE")
    if args.max_frames and not args.stream:
        raise UsageError("--max-frames stops a live source: give it with --stream")
    if args.resume and args.overwrite:
        raise UsageError("--resume continues the outputs that --overwrite would replace: give one of them")
    predictor = Predictor(
        args.weights,
        onnx=args.onnx,
        backend=args.backend,
        profile=profile,
        size=args.size,
        threshold=args.threshold,
        tta=args.tta,
        device=args.device,
    )
    out = Path(args.out) if args.out else runs_dir() / "predictions"
    print(
        f"predicting with {predictor.source} at {predictor.size} px on {predictor.backend}"
        + (" with flip TTA" if args.tta else "")
    )
    stream = stream_source(args.stream, args.stream_name) if args.stream else None
    report = predict_inputs(
        predictor,
        args.inputs,
        out,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
        resume=args.resume,
        save_frames=args.save_frames,
        stream=stream,
        max_frames=args.max_frames,
        overlay_size=args.overlay_size,
    )
    resumed = f" ({report.resumed} taken over from the earlier run)" if report.resumed else ""
    print(
        f"{report.frames} frames in {report.seconds:.1f} s{resumed}: {report.frames_per_second:.1f} frames/s "
        f"({report.network_seconds:.1f} s in the network); outputs and {report.csv.name} in {out}"
    )
    for video in report.videos:
        print(f"overlay video: {video}")
    if stream is not None and report.latencies:
        latency = np.array(report.latencies) * 1000
        print(
            f"latency from decoding to writing: median {np.median(latency):.0f} ms, 95th percentile "
            f"{np.percentile(latency, 95):.0f} ms; {report.dropped} frame(s) dropped to keep up"
        )
    if report.skipped:
        print(f"{len(report.skipped)} file(s) skipped (listed above and in {report.csv})", file=sys.stderr)
        return 2
    return 0


def add_predict(sub) -> None:
    """The ``predict`` subcommand's parser (beside its handler, :func:`_predict`)."""
    p = sub.add_parser(
        "predict",
        help="run a trained student on your own frames, folders, videos and live streams",
        description="Predict polyp masks on image files (JPEG, PNG, TIFF, BMP), folders of them (recursive, "
        "sorted), videos (MP4, AVI, MOV, MKV; decoded with PyAV) and a live stream (--stream). Per image: the "
        "binary mask (PNG, the frame's size) and an overlay PNG. Per video: the overlay video (<name>_overlay.mp4, "
        "its longest side 640 px unless --overlay-size says otherwise) and every frame's mask, at the frame's "
        "size, in one lossless video (<name>_masks.mov, 1-bit PNG frames); per-frame PNGs only with "
        "--save-frames. predictions.csv: one row per image and video frame (time stamp, polyp found, area "
        "fraction, max probability, bounding box), written as frames finish. Decoding, the network and "
        "writing run at once. Ctrl-C leaves every output valid for the frames done; --resume continues. "
        "Exits 2 if any file was skipped.",
        epilog="Example: kdas predict frames/ clip.mp4 --weights runs/checkpoints/student-kdas-s0-standard/best.pt "
        "--out predictions",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders of them, video files")
    p.add_argument(
        "--weights",
        help="an engine checkpoint (best.pt), a state_dict of the student or teacher "
        "(torch.save(model.state_dict(), path)), or a Polyp-PVT-format file (default: the profile's trained "
        "KDAS student, seed 0)",
    )
    p.add_argument("--onnx", metavar="FILE", help="run this ONNX student (kdas export) with onnxruntime instead")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="what runs the network: auto (ONNX Runtime on the CPU when installed, else PyTorch; the weights are "
        "exported once and cached in runs/onnx-cache/), torch, onnx, or onnx-int8 (its matrix products in int8; "
        "tolerance in docs/predict.md)",
    )
    p.add_argument(
        "--stream",
        metavar="URL_OR_DEVICE",
        help="a live source FFmpeg opens (rtsp://, http://, udp://, a camera such as /dev/video0): the overlay "
        "and masks are written as frames arrive, frames are dropped when the network falls behind, and the "
        "latency of each frame goes to the CSV; stop with Ctrl-C or --max-frames",
    )
    p.add_argument("--stream-name", help="the name of the stream's outputs (default: the address's last part)")
    p.add_argument("--max-frames", type=positive_int, help="with --stream: stop after this many frames")
    p.add_argument("--out", help="output folder (default: runs/predictions)")
    p.add_argument(
        "--threshold", type=threshold, default=0.5, help="probability at or above which a pixel is polyp (default 0.5)"
    )
    p.add_argument(
        "--size",
        type=image_size,
        help="the network's input size, a multiple of 32: smaller is faster (docs/predict.md has a table of "
        "frames/s and Dice at 256, 320, 352); default: the checkpoint's training size, else 352",
    )
    p.add_argument("--batch-size", type=positive_int, default=8, help="frames per forward pass (default 8)")
    p.add_argument("--tta", action="store_true", help="average with the horizontally flipped frame's prediction")
    p.add_argument(
        "--overlay-size",
        type=non_negative_int,
        default=OVERLAY_SIZE,
        metavar="PX",
        help=f"the overlay video's longest side in pixels (default {OVERLAY_SIZE}; never enlarged; 0: the frame's "
        "own size: drawing and encoding a 1280 x 1024 overlay took 2.3x as long, docs/predict.md). The masks keep "
        "the frame's size",
    )
    p.add_argument(
        "--save-frames", action="store_true", help="also write each video frame's mask and overlay as PNGs (full size)"
    )
    p.add_argument("--resume", action="store_true", help="continue a run into --out that stopped part-way")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that exist already")
    profile_argument(p)
    p.set_defaults(run=_predict)
