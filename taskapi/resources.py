"""Files that ship with TaskAPI: the OpenAPI spec and the Alembic migrations.

A wheel carries them in taskapi/_bundled/; a source checkout has them at the repository root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_PACKAGE = Path(__file__).resolve().parent
# libyaml's parser, which PyYAML's wheels include: with the pure-Python one, parsing the spec
# was most of the time it takes to build an app.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _find(bundled: str, checkout: str) -> Path:
    for candidate in (_PACKAGE / "_bundled" / bundled, _PACKAGE.parent / checkout):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{checkout} is missing from this installation")


def spec_path() -> Path:
    return _find("openapi.yaml", "openapi/openapi.yaml")


def migrations_path() -> Path:
    return _find("migrations", "migrations")


def parse_spec(text: str) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 (a safe loader)
    return spec


def load_spec() -> dict[str, Any]:
    return parse_spec(spec_path().read_text(encoding="utf-8"))
