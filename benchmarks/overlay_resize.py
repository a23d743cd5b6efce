"""The overlay video's frame made smaller by OpenCV's ``INTER_AREA`` at the frame's own ratio (what ``kdas
predict`` did until 2026-12-07) against :func:`kdas_utils.predict.writers.shrink` (halve by area averaging,
then bilinear), in turn, ROUNDS times each, on a 20-second clip of real frames at each size: fp32 ONNX at
256 px, ``kdas_utils.bench_predict.measure`` in a fresh process per run (end to end, the network alone, CPU a
frame).

    KDAS_DATA_ROOT=../shared/data/polyp256 python benchmarks/overlay_resize.py [WEIGHTS] [ROUNDS] [OUT.json]

WEIGHTS: a trained student's engine checkpoint, or ``-`` for a seeded one at the threshold the bench gives it.
Result of 2026-12-07: benchmarks/results/checks/overlay-resize-cpu-20261207-*.json (docs/results.md)."""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

SIZES = ((1350, 1080), (1920, 1080))
WORKER = """
import json, sys
from pathlib import Path
import cv2
from kdas_utils import bench_predict
from kdas_utils.predict import writers
weights, video, threshold, old = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "old"
if old:  # the resize of before: INTER_AREA at the frame's own ratio
    writers.shrink = lambda image, size: cv2.resize(image, size, interpolation=cv2.INTER_AREA)
print("RESULT " + json.dumps(bench_predict.measure(Path(weights), Path(video), "onnx", 256, 8, threshold)))
"""


def run(weights: Path, video: Path, threshold: float, old: bool) -> dict:
    argv = [sys.executable, "-c", WORKER, str(weights), str(video), repr(threshold), "old" if old else "new"]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.split("RESULT ", 1)[1])


def main() -> None:
    from kdas_utils.bench_predict import seeded_weights, write_test_video

    args = sys.argv[1:]
    rounds = int(args[1]) if len(args) > 1 else 3
    out = Path(args[2] if len(args) > 2 else "overlay-resize-cpu.json")
    result = {"backend": "onnx", "size": 256, "rounds": rounds, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights, threshold = (Path(args[0]), 0.5) if args and args[0] != "-" else seeded_weights(tmp)
        result["weights"] = str(weights)
        for width, height in SIZES:
            video = write_test_video(tmp / f"clip-{width}x{height}.mp4", 20, size=(width, height))
            for round_ in range(rounds):
                for old in (True, False):
                    row, resize = run(weights, video, threshold, old), "INTER_AREA" if old else "shrink"
                    kept = {k: row[k] for k in ("end_to_end_fps", "network_fps", "ratio", "cpu_ms_per_frame")}
                    result["runs"].append({"source": f"{width}x{height}", "resize": resize, "round": round_} | kept)
                    cpu = row["cpu_ms_per_frame"]
                    print(
                        f"{width}x{height} {resize:10s} end to end "
                        f"{row['end_to_end_fps']:.1f} ({row['ratio']:.2f}x), CPU a frame {cpu['all']:.1f} ms "
                        f"(writer {cpu['write']:.1f}, other {cpu['other']:.1f})",
                        flush=True,
                    )
    result["means"] = means(result["runs"])
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["means"], indent=2))
    print(f"written {out}")


def means(runs: list[dict]) -> dict:
    """``{"<source> <resize>": {end_to_end_fps, ratio, cpu_ms_all, cpu_ms_write}}``: the mean of the rounds."""
    groups: dict[str, list[dict]] = {}
    for r in runs:
        groups.setdefault(f"{r['source']} {r['resize']}", []).append(r)

    def mean(rows, get):
        return sum(get(r) for r in rows) / len(rows)

    return {
        key: {
            "end_to_end_fps": mean(rows, lambda r: r["end_to_end_fps"]),
            "ratio": mean(rows, lambda r: r["ratio"]),
            "cpu_ms_all": mean(rows, lambda r: r["cpu_ms_per_frame"]["all"]),
            "cpu_ms_write": mean(rows, lambda r: r["cpu_ms_per_frame"]["write"]),
        }
        for key, rows in groups.items()
    }


if __name__ == "__main__":
    main()
