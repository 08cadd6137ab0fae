"""tests/contract/run.py: a run that hits CPython's spurious AST error is run once more."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import pytest

from tests.contract import run as contract

FLAKE = f"Runtime Error\n{contract.INTERPRETER_FLAKE} (before=66, after=93)\n"


@pytest.fixture
def outcomes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """The (status, output) of each Schemathesis run to come, in order; consumed as they run."""
    planned: list[tuple[int, str]] = []
    monkeypatch.setattr(contract, "REPORTS", tmp_path)

    def fake_run(backend: str, extra: list[str], out: TextIO) -> int:
        status, output = planned.pop(0)
        out.write(output)
        return status

    monkeypatch.setattr(contract, "_run", fake_run)
    return planned


def test_a_run_that_hit_the_interpreter_bug_is_run_again(outcomes, tmp_path):
    outcomes.extend([(1, FLAKE), (0, "19 passed\n")])
    assert contract.run("sqlite", []) == 0
    assert outcomes == []
    log = (tmp_path / "contract-sqlite.log").read_text()
    assert "running it again" in log
    assert log.endswith("19 passed\n")
    assert FLAKE in (tmp_path / "contract-sqlite.first.log").read_text()


def test_a_second_hit_fails_the_run(outcomes):
    outcomes.extend([(1, FLAKE), (1, FLAKE)])
    assert contract.run("postgresql", []) == 1
    assert outcomes == []


def test_any_other_failure_is_not_run_again(outcomes, tmp_path):
    outcomes.extend([(1, "1 failed: response violates schema\n"), (0, "unused\n")])
    assert contract.run("sqlite", []) == 1
    assert outcomes == [(0, "unused\n")]
    assert not (tmp_path / "contract-sqlite.first.log").exists()
