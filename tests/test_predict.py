"""``kdas predict`` and :class:`kdas_utils.predict.Predictor` on real frames: folders, videos,
ONNX, bad input. The networks are seeded students (no trained weights can be had here); what is
tested is that every path gives the same prediction for the same frame, and what is written."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from kdas_utils.cli import main
from kdas_utils.data import read_image
from kdas_utils.engine import CHECKPOINT_FORMAT, save_checkpoint
from kdas_utils.engine.checkpoint import architecture
from kdas_utils.kdas.remap import to_polyp_pvt_keys
from kdas_utils.models import build_student
from kdas_utils.predict import CSV_NAME, Prediction, Predictor, collect_inputs, read_masks

SIZE = 128  # the size the test checkpoint says it was trained at: small, so the tests stay quick
# Frames predicted in a batch and one by one go through different CPU kernels, which round differently
# (seen: a CPU without AVX-512 flips pixels whose probability sits at the threshold). So probabilities
# are compared within TOLERANCE, and masks everywhere except where p is within TOLERANCE of the threshold.
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(3)
    return build_student().eval()


@pytest.fixture(scope="module")
def weights(student, tmp_path_factory):
    """An engine checkpoint of the seeded student that records its training size."""
    path = tmp_path_factory.mktemp("weights") / "best.pt"
    state = {
        "format": CHECKPOINT_FORMAT,
        "model": student.state_dict(),
        "arch": architecture(student),
        "config": {"image_size": SIZE},
    }
    return save_checkpoint(state, path)


@pytest.fixture(scope="module")
def threshold(weights, real_root):
    """The median probability of a real frame: a seeded network is unsure everywhere (all its
    probabilities lie near 0.58), so at 0.5 every mask would be full and prove nothing."""
    frame = sorted((real_root / "TestDataset" / "Kvasir" / "images").iterdir())[0]
    return float(np.median(Predictor(weights, device="cpu").predict(frame).probability))


@pytest.fixture(scope="module")
def predictor(weights, threshold):
    return Predictor(weights, threshold=threshold, device="cpu")


@pytest.fixture
def frames(real_root, tmp_path):
    """Six real test frames (Kvasir and CVC-ClinicDB, their own sizes) in a folder with a subfolder."""
    folder = tmp_path / "frames"
    (folder / "clinic").mkdir(parents=True)
    for path in sorted((real_root / "TestDataset" / "Kvasir" / "images").iterdir())[:3]:
        shutil.copy(path, folder / path.name)
    for path in sorted((real_root / "TestDataset" / "CVC-ClinicDB" / "images").iterdir())[:3]:
        shutil.copy(path, folder / "clinic" / path.name)
    return folder


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_predict_help_names_its_options(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["predict", "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    for option in ("--weights", "--out", "--onnx", "--threshold", "--size", "--batch-size", "--tta", "--overwrite"):
        assert option in text, option


def test_a_folder_of_real_frames_through_the_command(frames, weights, predictor, threshold, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["predict", str(frames), "--weights", str(weights), "--out", str(out), "--batch-size", "4"]
    assert main([*argv, "--threshold", repr(threshold)]) == 0
    printed = capsys.readouterr().out
    assert f"at {SIZE} px" in printed and "6 frames in" in printed and "frames/s" in printed
    rows = read_csv(out / CSV_NAME)
    files = sorted(p for p in frames.rglob("*.jpg"))
    assert [Path(r["file"]).name for r in rows] == [p.name for p in sorted(files, key=lambda p: p.relative_to(frames))]
    for row in rows:
        source = Path(row["file"])
        mask = np.asarray(Image.open(out / row["mask"]))
        expected = predictor.predict(source)
        height, width = read_image(source).shape[:2]
        assert mask.shape == (height, width) == (int(row["height"]), int(row["width"]))
        assert set(np.unique(mask)) <= {0, 255}
        assert_same_mask(mask == 255, expected, threshold, source)  # batched as 4 = one by one
        assert float(row["max_probability"]) == pytest.approx(expected.max_probability, abs=TOLERANCE)
        written = Prediction(expected.probability, mask == 255)  # the row describes the mask written
        assert int(row["polyp"]) == written.found == expected.found
        assert tuple(int(row[k]) for k in ("x_min", "y_min", "x_max", "y_max")) == written.bbox
        assert (out / "overlays" / Path(row["mask"]).name).exists()
    areas = [float(r["area_fraction"]) for r in rows]
    assert min(areas) < 0.9 and max(areas) > 0.1  # masks neither empty nor full: the comparison means something
    assert rows[-1]["mask"].startswith("clinic__")  # a subfolder's frame is named after it


def write_clip(path: Path, frames: list[np.ndarray], rate: int = 10) -> Path:
    """A lossless video of ``frames`` (FFV1), so the decoded frames are the frames written."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "bgr0"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def clip_frames(real_root) -> list[np.ndarray]:
    images = sorted((real_root / "TestDataset" / "Kvasir" / "images").iterdir())[:5]
    return [np.asarray(Image.open(p).convert("RGB").resize((160, 128))) for p in images]


def test_a_video_gives_an_overlay_video_one_mask_video_and_a_row_per_frame(
    clip_frames, predictor, threshold, tmp_path, capsys
):
    video = write_clip(tmp_path / "clip.avi", clip_frames)
    out = tmp_path / "out"
    argv = ["predict", str(video), "--weights", predictor_weights(predictor), "--out", str(out)]
    assert main([*argv, "--threshold", repr(threshold)]) == 0
    assert "overlay video:" in capsys.readouterr().out
    rows = read_csv(out / CSV_NAME)
    assert [int(r["frame"]) for r in rows] == list(range(5))
    assert [float(r["time_s"]) for r in rows] == pytest.approx([i / 10 for i in range(5)])
    masks = list(read_masks(out / "clip_masks.mov"))
    assert len(masks) == 5 and {r["mask"] for r in rows} == {"clip_masks.mov"}
    for row, frame, written in zip(rows, clip_frames, masks):
        assert_same_mask(written, predictor.predict(frame), threshold, row["frame"])
        assert 0 < written.mean() < 1 and float(row["area_fraction"]) == pytest.approx(written.mean(), abs=1e-6)
    with av.open(str(out / "clip_overlay.mp4")) as container:
        decoded = list(container.decode(video=0))
    assert len(decoded) == 5 and (decoded[0].width, decoded[0].height) == (160, 128)
    assert sorted(p.name for p in out.iterdir()) == ["clip_masks.mov", "clip_overlay.mp4", CSV_NAME]  # 3 files
    again = tmp_path / "frames"
    assert main([*argv[:-1], str(again), "--threshold", repr(threshold), "--save-frames"]) == 0
    assert np.array_equal(np.asarray(Image.open(again / "clip" / "000004.png")) == 255, masks[4])
    assert Image.open(again / "clip" / "overlays" / "000004.png").size == (160, 128)  # PNGs at the frame's size
    small = tmp_path / "small"
    assert main([*argv[:-1], str(small), "--threshold", repr(threshold), "--overlay-size", "80"]) == 0
    with av.open(str(small / "clip_overlay.mp4")) as container:
        assert [(f.width, f.height) for f in container.decode(video=0)] == [(80, 64)] * 5
    assert np.array_equal(next(read_masks(small / "clip_masks.mov")), masks[0])  # the masks keep the frame's size


def assert_same_mask(mask: np.ndarray, expected: Prediction, threshold: float, where) -> None:
    """``mask`` equals ``expected.mask`` except at pixels whose probability lies within TOLERANCE of the
    threshold (the batch size's rounding can flip those), and such pixels are few."""
    differ = mask != expected.mask
    near = np.abs(expected.probability - threshold) <= TOLERANCE
    assert not (differ & ~near).any(), f"{where}: {int((differ & ~near).sum())} pixel(s) away from the threshold differ"
    assert differ.mean() < 1e-3, f"{where}: {differ.mean():.2%} of the pixels differ"


def predictor_weights(predictor) -> str:
    return predictor.source.removeprefix("engine checkpoint: ")


def test_onnx_equals_pytorch_within_1e_4(frames, student, weights, tmp_path, capsys):
    from kdas_utils.export import export_onnx

    onnx = export_onnx(student, tmp_path / "student.onnx", image_size=SIZE)
    paths = sorted(frames.rglob("*.jpg"))
    torch_run, onnx_run = Predictor(weights, device="cpu"), Predictor(onnx=onnx)
    assert onnx_run.size == SIZE
    difference = np.abs(
        torch_run.probabilities([read_image(p) for p in paths]) - onnx_run.probabilities([read_image(p) for p in paths])
    )
    assert difference.max() < 1e-4
    outs = {}
    for name, option in (("torch", ["--weights", str(weights)]), ("onnx", ["--onnx", str(onnx)])):
        outs[name] = tmp_path / name
        assert main(["predict", str(frames), *option, "--out", str(outs[name])]) == 0
    capsys.readouterr()
    for a, b in zip(read_csv(outs["torch"] / CSV_NAME), read_csv(outs["onnx"] / CSV_NAME)):
        assert abs(float(a["max_probability"]) - float(b["max_probability"])) < 1e-4
    with pytest.raises(Exception, match="fixed at export"):
        Predictor(onnx=onnx, size=SIZE * 2)


def test_a_corrupt_file_among_good_ones_is_named_counted_and_the_rest_written(frames, weights, tmp_path, capsys):
    good = sorted(frames.glob("*.jpg"))[0].read_bytes()
    (frames / "broken.jpg").write_bytes(good[: len(good) // 3])  # a truncated JPEG
    (frames / "noise.png").write_bytes(b"not a png at all")
    (frames / "empty.mp4").write_bytes(b"\x00" * 64)  # a video with no decodable frame
    (frames / "notes.txt").write_text("ignored: not an image")
    out = tmp_path / "out"
    assert main(["predict", str(frames), "--weights", str(weights), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    for name in ("broken.jpg", "noise.png", "empty.mp4"):
        assert f"skipped {frames / name}" in captured.out, name
    assert "no decodable frame" in captured.out and "ignored " in captured.out
    assert "3 file(s) skipped" in captured.err
    rows = read_csv(out / CSV_NAME)
    assert sum(1 for r in rows if r["error"]) == 3
    assert sum(1 for r in rows if r["mask"]) == 6 and all((out / r["mask"]).exists() for r in rows if r["mask"])
    assert not (out / "broken.png").exists() and not (out / "empty_overlay.mp4").exists()


def test_bad_inputs_and_outputs_end_in_one_line(frames, weights, tmp_path, capsys):
    def error(*argv) -> str:
        assert main(["predict", *argv, "--weights", str(weights)]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("kdas predict: error: "), lines
        return lines[0]

    (tmp_path / "empty").mkdir()
    line = error(str(tmp_path / "empty"), "--out", str(tmp_path / "o1"))
    assert "empty: the folder holds no image or video file" in line
    assert "no such file or folder" in error(str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "o2"))
    (tmp_path / "file").write_text("")
    assert f"--out {tmp_path / 'file'} is a file" in error(str(frames), "--out", str(tmp_path / "file"))
    out = tmp_path / "out"
    assert main(["predict", str(frames), "--weights", str(weights), "--out", str(out)]) == 0
    capsys.readouterr()
    before = (out / CSV_NAME).read_bytes()
    assert "exist already; pass --resume to continue a run that stopped, --overwrite" in error(
        str(frames), "--out", str(out)
    )
    assert (out / CSV_NAME).read_bytes() == before
    assert main(["predict", str(frames), "--weights", str(weights), "--out", str(out), "--overwrite"]) == 0
    with pytest.raises(SystemExit):
        main(["predict", str(frames), "--threshold", "1"])  # argparse refuses it before any work


def test_flip_tta_is_flip_equivariant(predictor, weights, real_pair):
    frame = read_image(real_pair[0])
    tta = Predictor(weights, tta=True, device="cpu")
    a, b = tta.predict(frame), tta.predict(np.ascontiguousarray(frame[:, ::-1]))
    assert np.abs(a.probability[:, ::-1] - b.probability).max() < 1e-5
    plain = predictor.predict(frame).probability
    flipped = predictor.predict(np.ascontiguousarray(frame[:, ::-1])).probability[:, ::-1]
    assert np.abs(a.probability - (plain + flipped) / 2).max() < 1e-5


def test_polyp_pvt_format_weights_predict_as_the_engine_checkpoint(student, weights, real_pair, tmp_path):
    official = tmp_path / "student.pth"
    torch.save(to_polyp_pvt_keys(student.state_dict()), official)
    frame = read_image(real_pair[0])
    a = Predictor(weights, device="cpu").predict(frame)
    b = Predictor(official, size=SIZE, device="cpu").predict(frame)
    assert Predictor(official, device="cpu").size == 352  # the file records no size: the paper's
    assert np.abs(a.probability - b.probability).max() < 1e-5


def test_prediction_summary_on_a_hand_case():
    probability = np.zeros((4, 6), np.float32)
    probability[1:3, 2:5] = 0.9
    probability[0, 0] = 0.4
    result = Prediction(probability, probability >= 0.5)
    assert result.found and result.bbox == (2, 1, 4, 2) and result.area_fraction == pytest.approx(6 / 24)
    assert result.max_probability == pytest.approx(0.9)
    empty = Prediction(probability * 0, probability * 0 > 0.5)
    assert not empty.found and empty.bbox is None and empty.row()["x_min"] == ""


def test_colliding_names_get_their_suffix_then_their_input(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / folder / "x.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "a" / "x.jpg")
    names = [s.name for s in collect_inputs([tmp_path / "a", tmp_path / "b"]).sources]
    assert len(set(names)) == 3 and "x_jpg" in names and "b__x_png" in names


def test_the_tryout_widget_draws_a_real_frame_and_names_a_bad_upload(predictor, real_pair):
    from kdas_utils.widgets import FrameTryout, _decode_upload

    tryout = FrameTryout(predictor)
    png, line = tryout.picture(real_pair[0], real_pair[0].name)
    assert png.startswith(b"\x89PNG") and Image.open(io.BytesIO(png)).size[0] > 400
    expected = predictor.predict(real_pair[0])
    assert line.startswith(f"{real_pair[0].name} (") and f"{expected.max_probability:.3f}" in line
    upload = {"name": real_pair[0].name, "content": memoryview(real_pair[0].read_bytes())}
    assert np.array_equal(_decode_upload(upload), read_image(real_pair[0]))
    with pytest.raises(ValueError, match="notes.png cannot be decoded as an image"):
        _decode_upload({"name": "notes.png", "content": b"plain text"})
    box = tryout.widget()
    assert tryout._caption.value.startswith("<i>") and len(box.children) == 3
    path_box = box.children[0].children[1]
    path_box.value = str(real_pair[0])  # as if typed and Enter pressed
    assert f"{expected.max_probability:.3f}" in tryout._caption.value and bytes(tryout._picture.value).startswith(
        b"\x89PNG"
    )
    path_box.value = "missing.jpg"
    assert "missing.jpg" in tryout._caption.value and "color:#b00" in tryout._caption.value
