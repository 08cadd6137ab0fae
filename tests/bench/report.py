"""Percentiles, the tables a run prints, and results.json / results.md."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 100 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table padded into columns, so it reads the same in a terminal."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        padded = (
            v.ljust(w) if i == 0 else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        )
        return "| " + " | ".join(padded) + " |"

    # The first column is text; the others are figures, right-aligned.
    dashes = ["-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)]
    rule = "|" + "|".join(dashes) + "|"
    return "\n".join([line(headers), rule, *(line(row) for row in cells)])


def load_table(results: Sequence[dict[str, Any]]) -> str:
    headers = (
        "scenario",
        "req/s",
        "p50 ms",
        "p99 ms",
        "non-2xx",
        "sock err",
        "peak RSS MB largest / sum",
        "CPU % server / machine",
        "PG sessions opened",
    )
    rows = []
    for r in results:
        usage = r["usage"]
        rows.append(
            (
                r["scenario"],
                r["requests_per_s"],
                r["latency_ms"]["p50"],
                r["latency_ms"]["p99"],
                r["non_2xx"],
                sum(r["socket_errors"].values()),
                f"{usage['peak_rss_largest_mb']:.0f} / {usage['peak_rss_sum_mb']:.0f}",
                f"{usage['server_cpu_percent']:.0f} / {usage['machine_cpu_percent']:.0f}",
                r["pg_sessions_opened"],
            )
        )
    return markdown_table(headers, rows)


def sections(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, table) for each part of the run that produced results."""
    found = []
    if results.get("load"):
        found.append(("Load (wrk)", load_table(results["load"])))
    return found


def setup_lines(setup: dict[str, Any]) -> list[str]:
    return [f"- {key}: {value}" for key, value in setup.items()]


def write(directory: Path, setup: dict[str, Any], results: dict[str, Any]) -> str:
    """Write results.json and results.md; the tables as printed."""
    directory.mkdir(parents=True, exist_ok=True)
    document = {"setup": setup, "results": results}
    (directory / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    tables = "\n\n".join(f"## {title}\n\n{table}" for title, table in sections(results))
    markdown = "\n".join(["# TaskAPI benchmark", "", *setup_lines(setup), "", tables, ""])
    (directory / "results.md").write_text(markdown)
    return tables
