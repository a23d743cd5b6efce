"""environment.yml (conda, Binder) and pyproject.toml must name the same dependencies."""

from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]


def _pyproject() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {str(Requirement(r)) for r in project["dependencies"]}


def _environment(path: str = "environment.yml") -> tuple[set[str], list[str]]:
    env = yaml.safe_load((REPO / path).read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    requirements = {str(Requirement(line)) for line in pip if not line.startswith("-")}
    return requirements, pip


def test_same_dependencies():
    for path in ("environment.yml", "binder/environment.yml"):
        requirements, _ = _environment(path)
        assert requirements == _pyproject(), path


def test_binder_installs_the_package_after_the_environment():
    _, pip = _environment("binder/environment.yml")
    assert "-e ." not in pip  # repo2docker installs the environment before the repository is copied in
    post_build = (REPO / "binder" / "postBuild").read_text()
    assert "pip install --no-deps -e ." in post_build and (REPO / "binder" / "postBuild").stat().st_mode & 0o111


def test_environment_installs_the_package_with_python_and_pip():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    _, pip = _environment()
    assert "-e ." in pip
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"]) and "pip" in env["dependencies"]
