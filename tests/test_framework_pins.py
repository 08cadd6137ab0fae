"""The framework internals TaskAPI overrides are pinned to the versions they were tested with.

taskapi/web/framework/README.md's "Versions" table says, per package, which versions the
overrides were written against and what to check when a newer one comes. This test fails with
those words when an installed version is outside the table's range, and when pyproject.toml
pins a package otherwise than the table says.
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "taskapi" / "web" / "framework" / "README.md"


def versions_tested() -> dict[str, tuple[SpecifierSet, str]]:
    section = README.read_text().split("## Versions", 1)[1]
    rows = re.findall(r"^\| (\S+) \| `([^`]+)` \| (.+) \|$", section, flags=re.MULTILINE)
    return {package: (SpecifierSet(tested), what) for package, tested, what in rows}


def pinned() -> dict[str, SpecifierSet]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(line) for line in project["dependencies"]]
    return {r.name.lower(): r.specifier for r in requirements}


def test_the_readme_names_the_packages_whose_internals_are_overridden():
    assert set(versions_tested()) == {"connexion", "flask", "starlette", "uvicorn"}


@pytest.mark.parametrize("package", sorted(versions_tested()))
def test_the_installed_version_is_one_the_overrides_were_tested_with(package):
    tested, when_it_moves = versions_tested()[package]
    installed = version(package)
    assert tested.contains(installed, prereleases=True), (
        f"{package} {installed} is outside {tested}, what taskapi/web/framework/README.md "
        f"says its overrides were tested with. {when_it_moves}"
    )


@pytest.mark.parametrize("package", sorted(versions_tested()))
def test_pyproject_pins_what_the_readme_says(package):
    tested, _ = versions_tested()[package]
    assert pinned()[package] == tested, "pyproject.toml and the framework README disagree"
