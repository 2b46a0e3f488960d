"""environment.yml (conda users) and pyproject.toml (pip, CI) declare the same dependencies."""

from __future__ import annotations

import tomllib

import yaml
from packaging.requirements import Requirement

# Conda package names that differ from the PyPI names used in pyproject.toml.
CONDA_NAMES = {"torch": "pytorch"}
CONDA_ONLY = {"python", "pip"}


def _pyproject_requirements(repo) -> dict[str, str]:
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {Requirement(r).name.lower(): str(Requirement(r).specifier) for r in reqs}


def _environment_requirements(repo) -> dict[str, str]:
    env = yaml.safe_load((repo / "environment.yml").read_text())
    entries = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            entries += [p for p in dep["pip"] if not p.startswith("-")]
        else:
            entries.append(dep)
    out = {}
    for entry in entries:
        req = Requirement(entry.replace(" ", ""))
        out[req.name.lower()] = str(req.specifier)
    return out


def test_environment_yml_agrees_with_pyproject(repo):
    pyproject = _pyproject_requirements(repo)
    environment = _environment_requirements(repo)
    expected = {CONDA_NAMES.get(name, name): spec for name, spec in pyproject.items()}
    actual = {name: spec for name, spec in environment.items() if name not in CONDA_ONLY}
    assert actual == expected


def test_environment_installs_this_package_and_pins_python(repo):
    env = yaml.safe_load((repo / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert any(p.endswith("-e .") for p in pip_section)
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.removeprefix("python") == project["requires-python"]


def test_torch_is_a_range_not_a_pin(repo):
    for spec in (
        _pyproject_requirements(repo)["torch"],
        _environment_requirements(repo)["pytorch"],
    ):
        assert "==" not in spec and ">=" in spec
