"""Every notebook has the series' fixed opening, and its links point at files that exist."""

import re
from pathlib import Path
from urllib.parse import unquote

import nbformat
import pytest

from kdas_utils.config import REPOSITORY

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
SLUG = REPOSITORY.removeprefix("https://github.com/")


def test_the_seven_lessons_are_there():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_opening_badges_setup_and_parameters(path):
    nb = nbformat.read(path, as_version=4)
    title = nb.cells[0].source
    assert title.startswith(f"# {path.name[:2]} · ") and "**What you will learn**" in title
    colab = re.search(
        r"\(https://colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/main/(notebooks/[^)]+)\)", title
    )
    binder = re.search(r"\(https://mybinder\.org/v2/gh/([^/]+/[^/]+)/main\?labpath=([^)]+)\)", title)
    assert colab and binder, "Colab and Binder badges"
    assert colab.group(1) == binder.group(1) == SLUG
    assert colab.group(2) == unquote(binder.group(2)) == f"notebooks/{path.name}"
    assert (REPO / colab.group(2)).is_file()
    setup = [c for c in nb.cells if c.cell_type == "code"][0].source
    assert '"google.colab" in sys.modules' in setup and "pip" in setup and "offer_real_data()" in setup
    imports = [c for c in nb.cells if c.cell_type == "code"][1].source
    assert imports.rstrip().endswith("print_environment()")
    parameters = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1 and "PROFILE = config.get_profile()" in parameters[0].source
    closing = "\n".join(c.source for c in nb.cells[-3:] if c.cell_type == "markdown")
    assert nb.cells[-1].cell_type == "markdown" and "## Recap" in closing
    assert "## Exercises" in closing and closing.count("<details>") >= 2, "two or three exercises with answers"
    assert "## References" in closing and "2312.08555" in closing


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_relative_links_resolve(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for target in re.findall(r"\]\(((?!https?://)[^)#]+)\)", text):
        assert (path.parent / target).exists(), f"{path.name} links to missing {target}"


def test_readme_links_resolve():
    text = (REPO / "README.md").read_text()
    for target in re.findall(r"\]\(((?!https?://)[^)#]+)\)", text):
        assert (REPO / target).exists(), f"README links to missing {target}"
