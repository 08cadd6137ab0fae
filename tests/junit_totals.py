"""Sum the JUnit reports of a CI run into the one line CI reads: `Total: N passed, N failed`.

    python tests/junit_totals.py [--failed-steps K] REPORT.xml...

Each report is a JUnit XML file (pytest's --junitxml, Schemathesis' --report junit). Errors
count as failures; K adds steps that failed without writing a report (a lint, an install).
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET  # reports this run wrote itself
from pathlib import Path


def totals(report: Path) -> tuple[int, int, int]:
    """(passed, failed, skipped) of one JUnit file."""
    root = ET.parse(report).getroot()  # noqa: S314
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    tests = failed = skipped = 0
    for suite in suites:
        tests += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    return tests - failed - skipped, failed, skipped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--failed-steps", type=int, default=0)
    parser.add_argument("reports", nargs="*", type=Path)
    args = parser.parse_args()
    passed = failed = skipped = 0
    for report in args.reports:
        if report.is_file():
            p, f, s = totals(report)
            print(f"{report}: {p} passed, {f} failed, {s} skipped")
            passed, failed, skipped = passed + p, failed + f, skipped + s
    failed += args.failed_steps
    print(f"Total: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
