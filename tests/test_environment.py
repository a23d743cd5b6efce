"""environment.yml (conda, Binder) and pyproject.toml must name the same dependencies."""

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]


def _pyproject() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {str(Requirement(r)) for r in project["dependencies"]}


def _environment() -> tuple[set[str], list[str]]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    requirements = {str(Requirement(line)) for line in pip if not line.startswith("-")}
    return requirements, pip


def test_same_dependencies():
    requirements, _ = _environment()
    assert requirements == _pyproject()


def test_environment_installs_the_package_with_python_and_pip():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    _, pip = _environment()
    assert "-e ." in pip
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"]) and "pip" in env["dependencies"]
