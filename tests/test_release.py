"""What a release carries: one version, a changelog entry, the license, clean SDK names."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import taskapi
from taskapi.resources import load_spec

ROOT = Path(__file__).resolve().parent.parent
VERBS = {"get", "put", "post", "delete", "patch"}


def changelog_sections() -> list[str]:
    """The version headings of CHANGELOG.md, newest first (`Unreleased` included)."""
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    return re.findall(r"^## \[([^\]]+)\]", text, re.M)


def test_the_spec_version_is_the_package_version():
    assert load_spec()["info"]["version"] == taskapi.__version__


def test_the_changelog_has_unreleased_then_the_current_version():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    sections = changelog_sections()
    assert sections[0] == "Unreleased"
    assert taskapi.__version__ in sections
    assert re.search(
        rf"^## \[{re.escape(taskapi.__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", text, re.M
    )
    for section in sections:
        assert re.search(rf"^\[{re.escape(section)}\]: https://", text, re.M), section


def test_every_released_spec_has_a_changelog_entry():
    released = {path.stem for path in (ROOT / "openapi" / "released").glob("*.yaml")}
    assert released
    assert released <= set(changelog_sections())


def test_the_license_is_the_mit_license_that_pyproject_and_the_spec_declare():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert re.search(r"^Copyright \(c\) \d{4} TaskAPI contributors$", text, re.M)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["license"] == "MIT"
    assert load_spec()["info"]["license"]["name"] == "MIT"


def _schemas(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas(value)


def test_every_enum_name_list_matches_its_values():
    """Generators drop x-enum-varnames silently unless there is one name per value."""
    named = [n for n in _schemas(load_spec()) if "x-enum-varnames" in n]
    assert named
    for schema in named:
        names = schema["x-enum-varnames"]
        assert len(names) == len(schema["enum"]), schema["enum"]
        assert len(set(names)) == len(names)
        assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", name) for name in names), names


def test_no_two_operation_ids_look_alike_in_an_sdk():
    """createTask and createTasks would become create_task and create_tasks side by side."""
    ids = [
        operation["operationId"]
        for item in load_spec()["paths"].values()
        for method, operation in item.items()
        if method in VERBS
    ]
    for a in ids:
        for b in ids:
            if a != b:
                assert a.lower() != b.lower(), (a, b)
                assert a.lower() + "s" != b.lower(), (a, b)
