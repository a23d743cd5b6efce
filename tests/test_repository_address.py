"""The repository's public address is written once, kdas_utils.config.REPOSITORY; every notebook's
Colab and Binder badges and its setup cell's `git clone`, and the README's badges, must use it."""

import re
from pathlib import Path

import nbformat
import pytest

from kdas_utils.config import REPOSITORY

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
SLUG = REPOSITORY.removeprefix("https://github.com/")
# Every way a GitHub repository's address appears in the series: the address itself (git clone),
# Colab's /github/<owner>/<name>/ and Binder's /v2/gh/<owner>/<name>/.
ADDRESS = re.compile(
    r"https://github\.com/(?P<github>[\w.-]+/[\w.-]+?)(?:\.git)?(?=[/\"'\s)]|$)"
    r"|colab\.research\.google\.com/github/(?P<colab>[\w.-]+/[\w.-]+)/"
    r"|mybinder\.org/v2/gh/(?P<binder>[\w.-]+/[\w.-]+)/"
)
# Other projects' repositories that the texts cite (papers' code, datasets): not the series' address.
CITED = re.compile(r"DengPingFan|whai362|huggingface|pytorch|rwightman|plemeri|james128333|tegusi|googlecolab")


def addresses(text: str) -> list[tuple[str, str]]:
    """``(kind, owner/name)`` of every repository address in ``text`` that is not a cited project's."""
    found = []
    for match in ADDRESS.finditer(text):
        kind = match.lastgroup
        if not CITED.search(match.group(kind)):
            found.append((kind, match.group(kind)))
    return found


def test_repository_is_a_github_address():
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", REPOSITORY)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_badges_and_clone_use_the_repository(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(cell.source for cell in nb.cells)
    found = addresses(text)
    assert {kind for kind, _ in found} >= {"colab", "binder", "github"}, "badges and the setup cell's git clone"
    wrong = [f"{kind}: {slug}" for kind, slug in found if slug != SLUG]
    assert not wrong, f"{path.name} uses another address than config.REPOSITORY ({REPOSITORY}): {wrong}"
    setup = next(cell.source for cell in nb.cells if cell.cell_type == "code")
    assert f'"git", "clone", "--depth", "1", "{REPOSITORY}.git"' in setup


def test_readme_uses_the_repository_and_says_where_to_change_it():
    text = (REPO / "README.md").read_text()
    found = addresses(text)
    assert {kind for kind, _ in found} >= {"colab", "binder"}
    assert all(slug == SLUG for _, slug in found), [f for f in found if f[1] != SLUG]
    assert "kdas_utils/config.py" in text and "REPOSITORY" in text
