"""What the docs name exists: links and anchors, files, settings, commands, Make targets, fields.

A rename in the code that the README, CHANGELOG.md or docs/ still spell the old way fails here:
every relative link and `#anchor` resolves, and every backticked file path, setting, `make`
target, `taskapi` command and `meta.` field is one the project has.
"""

from __future__ import annotations

import re
import subprocess
import sysconfig
from pathlib import Path

import pytest

from taskapi import config
from taskapi.cli import parser
from taskapi.resources import load_spec

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(
    [ROOT / "README.md", ROOT / "CHANGELOG.md", *ROOT.glob("docs/*.md"), *ROOT.glob("**/README.md")]
)
PAGES = sorted({p for p in PAGES if not {".venv", "node_modules", "build"} & set(p.parts)})
CODE_SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FILE_SUFFIXES = (".py", ".md", ".yaml", ".yml", ".toml", ".json", ".lua", ".sh", ".ts", ".ini")
# Variables the docs name that are not TaskAPI settings: the seed API's (still read, to build
# DATABASE_URL), the test suite's and the benchmark's, and other programs'.
OTHER_VARIABLES = {
    *("DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME", "DB_SSLMODE"),
    *("TEST_DATABASE_URL", "BENCH_ARGS", "TASKAPI_BIN", "K8S_VERSION", "CHROMIUM"),
    *("PROMETHEUS_MULTIPROC_DIR", "MALLOC_ARENA_MAX", "PYTHONWARNINGS", "PROMETHEUS"),
}
# Made by a build or a run, so absent from a fresh clone; and the files of the peers'
# benchmark harness (../shared/bench), which docs/performance.md describes.
GENERATED = ("node_modules/", "reports/", "build/", ".venv/")
HARNESS = {"raw/", "results.json", "targets/fastapi.sh", "targets/fastapi2.sh"}
SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])


def spans(page: Path) -> list[str]:
    """The page's inline code, outside fenced blocks."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    return CODE_SPAN.findall(text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def ids(pages: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in pages]


@pytest.mark.parametrize("page", PAGES, ids=ids(PAGES))
def test_relative_links_and_anchors_resolve(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    assert not broken, broken


def tracked() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return [*listed, *{str(Path(f).parent) + "/" for f in listed}]


TRACKED = tracked()


def existing(path: str) -> bool:
    """Whether a path the docs name exists: in the repository (in full, or its end, as the
    docs name a module within its package: `web/policies.py`, `listing.py`), or in an
    installed package (`connexion/apps/flask.py`)."""
    if path.startswith(GENERATED) or path in HARNESS:
        return True
    if (
        (ROOT / path).exists()
        or any(SITE_PACKAGES.glob(path))
        or any(SITE_PACKAGES.glob(f"*/{path}"))
    ):
        return True
    return any(f == path or f.endswith("/" + path) for f in TRACKED)


def looks_like_a_file(span: str) -> bool:
    if " " in span or span.startswith(("/", "$", "http", "~", ".venv")) or "*" in span:
        return False
    if "<" in span or "{" in span or "=" in span:
        return False
    return span.endswith(FILE_SUFFIXES) or (
        "/" in span and re.fullmatch(r"[\w.\-/]+/", span) is not None
    )


@pytest.mark.parametrize("page", PAGES, ids=ids(PAGES))
def test_the_files_the_docs_name_exist(page):
    named = {s for s in spans(page) if looks_like_a_file(s)}
    missing = sorted(s for s in named if not existing(s))
    assert not missing, missing


@pytest.mark.parametrize("page", PAGES, ids=ids(PAGES))
def test_the_settings_the_docs_name_exist(page):
    settings = {d.env for d in config.declarations().values()}
    constants = set(
        re.findall(
            r"^([A-Z][A-Z0-9_]+) *[:=]",
            "\n".join(p.read_text() for p in (ROOT / "taskapi").rglob("*.py")),
            flags=re.M,
        )
    )
    named = {
        m for s in spans(page) for m in re.findall(r"^([A-Z][A-Z0-9]*_[A-Z0-9_]+)(?:=.*)?$", s)
    }
    unknown = sorted(
        named - settings - OTHER_VARIABLES - constants - sdk_names() - opentelemetry_variables()
    )
    assert not unknown, unknown


def opentelemetry_variables() -> set[str]:
    """The OTEL_* variables OpenTelemetry's API and SDK read (docs/deploying.md, Traces)."""
    from opentelemetry import environment_variables as api
    from opentelemetry.sdk import environment_variables as sdk

    return {name for module in (api, sdk) for name in dir(module) if name.startswith("OTEL_")}


def sdk_names() -> set[str]:
    """The enum member names a generated SDK gives the list's sorts (CHANGELOG.md names
    them): `-created_at` is CREATED_AT_DESC; before the spec named them, VALUE_1 and so on."""
    values = load_spec()["components"]["parameters"]["Sort"]["schema"]["enum"]
    named = {v.lstrip("-").upper() + ("_DESC" if v.startswith("-") else "") for v in values}
    return named | {f"VALUE_{i}" for i in range(len(values))}


@pytest.mark.parametrize("page", PAGES, ids=ids(PAGES))
def test_the_make_targets_and_commands_the_docs_name_exist(page):
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, flags=re.M))
    commands = parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    db_actions = set(commands["db"]._actions[-2].choices)
    wrong = []
    for span in spans(page):
        for target in re.findall(r"(?:^|\s)make ([\w/.-]+)", span):
            if target not in targets and not existing(target.removesuffix(".installed")):
                wrong.append(f"make {target}")
        for command, action in re.findall(
            r"(?:^|bin/|\.\.\. taskapi )taskapi (\w+)(?: (\w+))?", span
        ):
            if command not in commands:
                wrong.append(f"taskapi {command}")
            elif command == "db" and action and action not in db_actions:
                wrong.append(f"taskapi db {action}")
    assert not wrong, wrong


@pytest.mark.parametrize("page", PAGES, ids=ids(PAGES))
def test_the_list_fields_the_docs_name_exist(page):
    schemas = load_spec()["components"]["schemas"]
    fields = {*schemas["PageMeta"]["properties"], *schemas["ChangesMeta"]["properties"]}
    named = {m for s in spans(page) for m in re.findall(r"\bmeta\.(\w+)", s)}
    assert named <= fields, named - fields
