"""Figures the README and the results page state that come from a measured record: read from it, not retyped."""

import json
import re
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
RESULTS = (REPO / "docs" / "results.md").read_text()  # the research report, moved out of the README
TIMES = {  # make tutorial's times on the two kinds of CPU the development machine comes as
    "fp32": json.loads((REPO / "results" / "tutorial_times.json").read_text()),
    "bf16": json.loads((REPO / "results" / "tutorial_times-bf16.json").read_text()),
}


def test_the_notebook_map_gives_the_recorded_times_of_both_cpu_kinds():
    notebooks = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    for kind, times in TIMES.items():
        assert sorted(k for k in times if k != "total") == notebooks  # the record covers every notebook
        for name in notebooks:
            row = next(line for line in README.splitlines() if f"(notebooks/{name})" in line and line.startswith("|"))
            stated = int(re.search(rf"(\d+) s {kind}\b", row).group(1))
            assert stated == round(times[name]), (kind, name, stated, times[name])
        total = int(
            re.search(
                rf"tutorial_times{'' if kind == 'fp32' else '-bf16'}\.json`: (\d+) s for the seven", README
            ).group(1)
        )
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
