"""The locked runtime set against the PyPI advisory database (pip-audit), as a report.

    .venv/bin/python tests/audit.py reports/pip-audit.json      (make audit)

Exports the runtime set from uv.lock with its hashes, audits exactly those versions, writes
pip-audit's JSON report and prints one line per finding and a summary. It never fails the
build: a new advisory against a dependency is news for a person to act on (the update bot's
pull requests usually carry the fix), not a reason to refuse unrelated work. Where the
advisory service cannot be reached, the packages it could not check are counted as skipped and
the summary says so.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UV = ROOT / "build" / "uv" / "bin" / "uv"
BIN = Path(sys.executable).parent


def main(report: Path) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        requirements = Path(scratch) / "runtime.txt"
        subprocess.run(
            [UV, "export", "--frozen", "--no-emit-project", "--quiet", "--format",
             "requirements.txt", "--output-file", requirements],
            cwd=ROOT,
            check=True,
        )  # fmt: skip
        audit = subprocess.run(
            [BIN / "pip-audit", "--requirement", requirements, "--require-hashes",
             "--disable-pip", "--progress-spinner", "off", "--format", "json",
             "--output", report],
            capture_output=True,
            text=True,
        )  # fmt: skip
    if not report.is_file():
        print(f"audit: pip-audit did not run: {audit.stderr.strip()}")
        return 0
    dependencies = json.loads(report.read_text())["dependencies"]
    skipped = [d for d in dependencies if "skip_reason" in d]
    findings = [(d, v) for d in dependencies for v in d.get("vulns", [])]
    for dependency, vulnerability in findings:
        fixed = ", ".join(vulnerability.get("fix_versions", [])) or "none yet"
        print(f"audit: {dependency['name']} {dependency['version']}: {vulnerability['id']} "
              f"(fixed in {fixed})")  # fmt: skip
    audited = len(dependencies) - len(skipped)
    print(
        f"audit: {audited} of {len(dependencies)} locked runtime packages audited, "
        f"{len(findings)} known vulnerabilities, {len(skipped)} skipped"
    )
    if skipped:
        # pip-audit asks PyPI's JSON API for each release (/pypi/<name>/<version>/json); a
        # network that reaches only the package index answers 404, which it reports as
        # "not found on PyPI".
        print(
            f"audit: {len(skipped)} could not be checked here (pip-audit: "
            f"{skipped[0]['skip_reason']}); where PyPI's JSON API answers, they are"
        )
    print(f"audit: report in {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/pip-audit.json")))
