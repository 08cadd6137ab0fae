"""What gets installed is what uv.lock says, and the habits around it hold: the lock follows
pyproject.toml, GitHub's CI runs what .ci/run runs, every action is pinned to a commit, and
the update bot watches every kind of dependency we have."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
UV = ROOT / "build" / "uv" / "bin" / "uv"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def project_copy(at: Path, pyproject: str | None = None) -> Path:
    """What uv reads to check the lock: pyproject.toml, the lock, and what the version and
    readme come from."""
    for name in ("uv.lock", "README.md", "taskapi/__init__.py"):
        (at / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, at / name)
    (at / "pyproject.toml").write_text(pyproject or (ROOT / "pyproject.toml").read_text())
    return at


def lock_check(project: Path, *, offline: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [UV, "lock", "--check", *(["--offline"] if offline else [])],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_lock_matches_pyproject(tmp_path):
    assert lock_check(project_copy(tmp_path)).returncode == 0


def test_a_pin_changed_without_relocking_fails_the_check(tmp_path):
    pyproject = (ROOT / "pyproject.toml").read_text()
    changed = pyproject.replace('"pyjwt>=2.10"', '"pyjwt>=2.9"')
    assert changed != pyproject
    # Telling why takes a resolution of the changed requirement, which needs the packages'
    # metadata: offline, uv has it only if a `uv lock` on this machine fetched it before, and
    # otherwise fails for want of the network instead.
    result = lock_check(project_copy(tmp_path, changed), offline=False)
    assert result.returncode != 0
    assert "pyjwt" in result.stderr


def test_the_lock_pins_every_package_with_hashes():
    lock = (ROOT / "uv.lock").read_text()
    packages = lock.split("\n[[package]]\n")[1:]
    assert len(packages) > 50
    for package in packages:
        if 'source = { editable = "." }' in package:
            continue  # taskapi itself
        assert re.search(r'^version = "', package, re.MULTILINE), package[:80]
        assert 'hash = "sha256:' in package, package[:80]


def test_github_ci_runs_what_dot_ci_run_runs():
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    runs = [step.get("run", "") for job in ci["jobs"].values() for step in job["steps"]]
    assert "bash .ci/run" in runs
    services = ci["jobs"]["test"]["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")


def test_every_action_is_pinned_to_a_commit():
    for workflow in WORKFLOWS:
        for used in re.findall(r"uses: (\S+)", workflow.read_text()):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", used), f"{workflow.name}: {used}"


def test_the_update_bot_watches_every_kind_of_dependency():
    config = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    ecosystems = {update["package-ecosystem"] for update in config["updates"]}
    assert ecosystems == {"uv", "npm", "docker", "docker-compose", "github-actions"}
