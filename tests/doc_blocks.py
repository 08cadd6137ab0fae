"""Markdown code blocks run as a reader pastes them, and checked against what the page claims.

A page's `sh`, `console` and `python` blocks, from the sections asked for, run in order: the
shell ones in one bash process (`set -euo pipefail`), so variables carry from block to block as
they do in a reader's terminal. Each command's output is checked against its page:

- a `console` block's output lines are the expected output: JSON compared as data, with ids,
  timestamps and tokens ignored; other text line for line;
- a trailing `# 204` (a status code) must be the command's last line of output, a trailing
  `# Header-Name: value` a line of it, and a trailing `# word` (one word) must appear in it;
  a comment in prose claims nothing;
- a command that calls curl or jq must print something (unless it sends its output to
  /dev/null), never a bare `null`, and never a problem document (`"success": false`) that
  the page does not show;
- a variable set from a command (`TOKEN=$(...)`) must not come out empty or `null`.

No maintained tool runs fenced shell blocks in one shared shell and checks their output this
way (pytest-markdown-docs and phmdoctest run Python blocks; cram and prysk want their own file
format), hence this module.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = "@@doc-block-step {}@@"
# Values that differ on every run: compared by presence, not by value.
VOLATILE_KEYS = re.compile(r"^(id|user_id|time|token|refresh_token|.*_at)$")
STATUS_CLAIM = re.compile(r"^([1-5]\d\d)\b")
HEADER_CLAIM = re.compile(r"^([A-Za-z][A-Za-z0-9-]*): (\S.*)$")
WORD_CLAIM = re.compile(r"^\S+$")
ASSIGNMENT = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=")
# A comment after a command: two spaces or more before the `#`, so a `#` inside an argument
# ('{"title": "#1"}') is not read as one.
TRAILING_COMMENT = re.compile(r"\s{2,}#\s?(.*)$")


@dataclass
class Step:
    """One command as the page shows it, with what the page says it prints."""

    kind: str  # "sh" or "python"
    text: str
    where: str  # page:line, for failure messages
    expected: list[str] | None = None  # a console block's output lines
    claim: str | None = None  # the trailing comment
    background: bool = False
    output: str = ""

    @property
    def assigns(self) -> list[str]:
        if self.kind != "sh":
            return []
        first = self.text.lstrip()
        if first.startswith("export "):
            return re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", first.split("\n")[0][7:])
        match = ASSIGNMENT.match(first)
        return [match.group(1)] if match and " " not in first.split("=", 1)[0] else []


@dataclass
class Page:
    path: Path
    text: str = field(init=False)

    def __post_init__(self) -> None:
        self.text = self.path.read_text()

    def section(self, heading: str) -> tuple[str, int]:
        """The text under `heading` (any level) up to the next heading of its level or higher,
        and the line it starts on."""
        lines = self.text.splitlines(keepends=True)
        for number, line in enumerate(lines):
            match = re.match(r"^(#+) (.*)$", line.rstrip())
            if match and match.group(2).strip() == heading:
                level = len(match.group(1))
                body = []
                for later in lines[number + 1 :]:
                    other = re.match(r"^(#+) ", later)
                    if other and len(other.group(1)) <= level:
                        break
                    body.append(later)
                return "".join(body), number + 2
        raise LookupError(f"{self.path.name} has no section {heading!r}")

    def steps(self, *headings: str) -> list[Step]:
        steps: list[Step] = []
        for heading in headings:
            body, first_line = self.section(heading)
            for match in re.finditer(r"^```(\w+)\n(.*?)^```", body, re.S | re.M):
                language, code = match.group(1), match.group(2)
                line = first_line + body[: match.start()].count("\n") + 1
                where = f"{self.path.name}:{line}"
                if language == "sh":
                    steps += shell_steps(code, where)
                elif language == "console":
                    steps += console_steps(code, where)
                elif language == "python":
                    steps.append(Step("python", code, where))
        return steps


def logical_lines(code: str) -> Iterable[tuple[int, str]]:
    """(offset, command) for each command of a shell block: lines joined at a trailing `\\`,
    and on while a `$(` or a quote is left open."""
    buffer: list[str] = []
    start = 0
    for number, line in enumerate(code.splitlines()):
        if not buffer:
            start = number
            if not line.strip() or line.lstrip().startswith("#"):
                continue
        buffer.append(line)
        joined = "\n".join(buffer)
        if line.endswith("\\") or _open(joined):
            continue
        yield start, joined
        buffer = []
    if buffer:
        yield start, "\n".join(buffer)


def _open(command: str) -> bool:
    """Whether `command` leaves a quote, a `$(` or a `do ... done` unfinished."""
    depth, quote = 0, ""
    for i, char in enumerate(command):
        if quote:
            if char == quote and command[i - 1] != "\\":
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "(" and command[i - 1 : i] == "$":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
    loops = len(re.findall(r"\bdo\b", command)) - len(re.findall(r"\bdone\b", command))
    return bool(quote) or depth > 0 or loops > 0


def shell_steps(code: str, where: str) -> list[Step]:
    steps = []
    page, line = where.rsplit(":", 1)
    for offset, command in logical_lines(code):
        last = command.splitlines()[-1]
        comment = TRAILING_COMMENT.search(last)
        claim = comment.group(1).strip() if comment else None
        background = command.rstrip().endswith("&")
        steps.append(Step("sh", command, f"{page}:{int(line) + offset}", None, claim, background))
    return steps


def console_steps(code: str, where: str) -> list[Step]:
    """`$ command` (continued by `\\`) followed by the lines it prints."""
    steps: list[Step] = []
    lines = code.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            i += 1
            continue
        command = [lines[i][2:]]
        while command[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            command.append(lines[i])
        i += 1
        expected = []
        while i < len(lines) and not lines[i].startswith("$ "):
            expected.append(lines[i])
            i += 1
        steps.append(Step("sh", "\n".join(command), where, expected))
    return steps


@dataclass
class Run:
    steps: list[Step]
    stderr: str
    returncode: int
    failed_at: Step | None


def run(
    steps: list[Step],
    *,
    cwd: Path,
    env: Mapping[str, str],
    logs: Path,
    python: Path,
    rewrite: Callable[[str], str] = lambda text: text,
    timeout: float = 300,
) -> Run:
    """Run the steps in order, the shell ones in one bash, in `cwd`. `rewrite` adapts a step's
    text to the test (its server's URL, its database); what a step starts in the background
    (`... &`) writes to a log in `logs` and is stopped at the end; python blocks run with
    `python`."""
    script = [
        "set -euo pipefail",
        'doc_value_set() { local v=${!1-}; if [ -z "$v" ] || [ "$v" = null ]; then '
        'echo "$1 came out empty or null" >&2; exit 97; fi; }',
    ]
    for index, step in enumerate(steps):
        # On a line of its own, whether or not the step's output ended with a newline.
        script.append(f"printf '\\n{MARKER.format(index)}\\n'")
        text = rewrite(step.text)
        if step.kind == "python":
            script.append(f"{python} - <<'DOC_PYTHON_EOF'\n{text}\nDOC_PYTHON_EOF")
        elif step.background:
            # Its output must not hold the pipe the steps print to open after the script ends.
            log = logs / f"background-{index}.log"
            script.append(f"{text.rstrip().removesuffix('&')} >{log} 2>&1 &")
        else:
            script.append(text)
        script += [f"doc_value_set {name}" for name in step.assigns]
    process = subprocess.Popen(
        ["bash", "-c", "\n".join(script)],
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a server a block starts with `&` goes with the session
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    reached = -1
    for index, part in enumerate(re.split(r"^@@doc-block-step (\d+)@@$", stdout, flags=re.M)):
        if index == 0:
            continue
        if index % 2 == 1:
            reached = int(part)
        else:
            steps[reached].output = part.strip("\n")
    failed = steps[reached] if process.returncode != 0 and reached >= 0 else None
    return Run(steps, stderr, process.returncode, failed)


def problems(result: Run) -> list[str]:
    """Every way the steps' output differs from what the page claims."""
    found = []
    if result.returncode != 0:
        where = result.failed_at.where if result.failed_at else "before the first step"
        found.append(f"{where}: exited {result.returncode}: {result.stderr.strip()[-2000:]}")
    for step in result.steps:
        if result.failed_at is step:
            break
        found += [f"{step.where}: {message}" for message in check(step)]
    return found


def check(step: Step) -> list[str]:
    output = step.output
    lines = [line for line in output.splitlines() if line.strip()]
    if step.expected is not None:
        return compare(step.expected, output)
    messages = []
    if step.claim is not None:
        messages += claimed(step.claim, lines)
    if step.background or step.assigns:
        return messages
    if step.kind == "python":
        return messages if lines else ["printed nothing"]
    silenced = re.search(r"-o /dev/null|>\s*/dev/null", step.text) and " -w " not in step.text
    if re.search(r"\b(curl|jq)\b", step.text) and not silenced:
        if not lines:
            messages.append("printed nothing")
        if any(line.strip() == "null" for line in lines):
            messages.append("printed null")
        for document in json_documents(output):
            if isinstance(document, dict) and document.get("success") is False:
                messages.append(f"answered a problem: {document.get('detail')}")
    return messages


def claimed(claim: str, lines: list[str]) -> list[str]:
    if status := STATUS_CLAIM.match(claim):
        last = lines[-1].strip() if lines else ""
        return [] if last == status.group(1) else [f"printed {last!r}, the page says {claim!r}"]
    if header := HEADER_CLAIM.match(claim):
        wanted = f"{header.group(1)}: {header.group(2)}".lower()
        seen = any(line.strip().lower() == wanted for line in lines)
        return [] if seen else [f"no {wanted!r} line, as the page says"]
    if WORD_CLAIM.match(claim):
        return [] if any(claim in line for line in lines) else [f"no {claim!r} printed"]
    return []


def compare(expected: list[str], output: str) -> list[str]:
    text = "\n".join(expected).strip()
    try:
        want = json.loads(text)
    except ValueError:
        got_lines = [line.rstrip() for line in output.strip().splitlines()]
        want_lines = [line.rstrip() for line in text.splitlines()]
        if got_lines == want_lines:
            return []
        return [f"printed {got_lines!r}, the page shows {want_lines!r}"]
    try:
        got = json.loads(output)
    except ValueError:
        return [f"printed {output!r}, the page shows JSON"]
    if without_volatile(got) == without_volatile(want):
        return []
    return [f"printed {json.dumps(got)}, the page shows {json.dumps(want)}"]


def without_volatile(value: object) -> object:
    if isinstance(value, dict):
        return {
            k: "<varies>" if VOLATILE_KEYS.match(k) else without_volatile(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [without_volatile(v) for v in value]
    return value


def json_documents(text: str) -> list[object]:
    decoder, documents, index = json.JSONDecoder(), [], 0
    while index < len(text):
        if text[index] not in "{[":
            index += 1
            continue
        try:
            document, index = decoder.raw_decode(text, index)
        except ValueError:
            index += 1
            continue
        documents.append(document)
    return documents
