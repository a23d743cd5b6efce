"""Figures the README and the results page state that come from a measured record: read from it, not retyped."""

import json
import re
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
RESULTS = (REPO / "docs" / "results.md").read_text()  # the research report, moved out of the README
RECORDS = {"fp32": "tutorial_times.json", "bf16": "tutorial_times-bf16.json"}  # make tutorial on each CPU kind


def test_the_notebook_map_gives_the_recorded_times_of_both_cpu_kinds():
    notebooks = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    for kind, record in RECORDS.items():
        times = json.loads((REPO / "results" / record).read_text())
        assert sorted(k for k in times if k != "total") == notebooks  # the record covers every notebook
        for name in notebooks:
            row = next(line for line in README.splitlines() if f"(notebooks/{name})" in line and line.startswith("|"))
            stated = int(re.search(rf"(\d+) s {kind}\b", row).group(1))
            assert stated == round(times[name]), (kind, name, stated, times[name])
        total = int(re.search(rf"{re.escape(record)}`: (\d+) s for the seven", README).group(1))
        assert total == round(times["total"]) and len(notebooks) == 7


def test_the_torch_of_the_committed_outputs_is_the_one_the_readme_names_for_them():
    cell = next(
        c
        for c in nbformat.read(REPO / "notebooks" / "01_data_preparation.ipynb", as_version=4).cells
        if c.cell_type == "code" and "print_environment()" in c.source
    )
    printed = re.search(r"torch\s+(\S+)", "".join(o.get("text", "") for o in cell.outputs)).group(1)
    tests = RESULTS[RESULTS.index("## Tests and notebooks") :]
    assert f"torch {printed}" in tests and f"or {printed}" in RESULTS


def test_the_readme_gives_the_video_speed_of_the_newest_cpu_bench():
    (newest,) = sorted((REPO / "benchmarks" / "results").glob("cpu-*.json"))  # the newest run of the device only
    predict = json.loads(newest.read_text())["predict"]
    stated = re.search(r"video runs (\d+) frames/s end to end on ONNX Runtime\s+at 256 px and (\d+) at", README)
    measured = [predict[f"onnx-{size}"]["end_to_end_fps"] for size in (256, 352)]
    assert [int(n) for n in stated.groups()] == [round(fps) for fps in measured], (newest.name, measured)
    table = (REPO / "docs" / "predict.md").read_text()
    for size in (256, 352):
        row = next(line for line in table.splitlines() if line.startswith(f"| {size} px |"))
        assert (
            f"{predict[f'onnx-{size}']['end_to_end_fps']:.1f}" in row
            and f"({predict[f'onnx-{size}']['network_fps']:.1f})" in row
        )
        test_dice = predict["tolerance"][f"onnx-{size}"]["torch_test_dice"]  # the accuracy column, the same run
        assert f"| {test_dice['Kvasir']:.3f} / {test_dice['CVC-ClinicDB']:.3f} |" in row, row
