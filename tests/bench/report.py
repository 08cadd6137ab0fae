"""Percentiles, the tables a run prints, and results.json / results.md."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (share 0.5 = p50); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


def latency_summary(values_ms: Sequence[float]) -> dict[str, Any]:
    return {
        "count": len(values_ms),
        "p50_ms": percentile(values_ms, 0.50),
        "p99_ms": percentile(values_ms, 0.99),
        "max_ms": max(values_ms) if values_ms else None,
    }


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


def deep_table(deep: dict[str, Any]) -> str:
    headers = (
        "sort",
        "page 1 p50 ms",
        "page 1 p99 ms",
        f"page {deep['middle_page']} p50 ms",
        "cursor p50 ms",
        "cursor p99 ms",
        "errors",
    )
    rows = [
        (
            row["sort"],
            row["first_page"]["p50_ms"],
            row["first_page"]["p99_ms"],
            row["middle_page"]["p50_ms"],
            row["cursor_pages"]["p50_ms"],
            row["cursor_pages"]["p99_ms"],
            row["errors"],
        )
        for row in deep["sorts"]
    ]
    return markdown_table(headers, rows)


def feed_table(feed: dict[str, Any]) -> str:
    rows = [
        (f"full sync, pages of {feed['page_size']}", *_summary(feed["full_sync_pages"])),
        (
            f"after {feed['after_changes']:,} changes, pages of {feed['page_size']}",
            *_summary(feed["after_changes_pages"]),
        ),
    ]
    return markdown_table(("sync", "pages", "p50 ms", "p99 ms", "max ms"), rows)


def _summary(latency: dict[str, Any]) -> tuple[Any, ...]:
    return latency["count"], latency["p50_ms"], latency["p99_ms"], latency["max_ms"]


def flood_tables(flood: dict[str, Any]) -> str:
    probe_rows = [
        (f"{path} ({phase})", s["count"], s["p50_ms"], s["p99_ms"], s["max_ms"], s["errors"])
        for phase in ("quiet", "flood")
        for path, s in flood["probes"][phase].items()
    ]
    probes = markdown_table(
        ("request", "count", "p50 ms", "p99 ms", "max ms", "errors"), probe_rows
    )
    logins = flood["logins"]
    statuses = logins["by_status"]
    login_row = [
        logins["sent"],
        *(statuses[k] for k in statuses),
        logins["latency"]["p50_ms"],
        logins["latency"]["max_ms"],
    ]
    answers = markdown_table(("logins sent", *statuses, "p50 ms", "max ms"), [login_row])
    return f"{probes}\n\n{answers}"


def sections(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, table) for each part of the run that produced results."""
    found = []
    if results.get("load"):
        found.append(("Load (wrk)", load_table(results["load"])))
    if results.get("login_flood"):
        rate = results["login_flood"]["rate_per_s"]
        found.append((f"Login flood ({rate:g} logins/s)", flood_tables(results["login_flood"])))
    if results.get("deep"):
        rows = results["deep"]["rows"]
        found.append((f"Deep listing ({rows:,} tasks, one worker)", deep_table(results["deep"])))
        if "feed" in results["deep"]:
            found.append((f"Change feed ({rows:,} tasks)", feed_table(results["deep"]["feed"])))
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
