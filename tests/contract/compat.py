"""Does a new OpenAPI 3.0 document keep every promise an older one made to its clients?

    python tests/contract/compat.py openapi/released/1.0.0.yaml openapi/openapi.yaml

Operations are matched by method and path (whatever the path parameters are called), every
local `$ref` is followed, and each difference that can break a client written against the old
document is printed; the exit status is 1 if there is any. A request must still be accepted
wherever the old document accepted it, and a response must still carry everything the old one
promised, in a form the old client understands. Differences that change only generated code
(an operationId, `x-enum-varnames`) or that clients are asked to tolerate (a new value in a
response enum) are printed as notes and do not fail.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Node = dict[str, Any]
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# Formats a server or a client library checks or parses; the others (password...) are hints.
CHECKED_FORMATS = {
    "date-time",
    "date",
    "time",
    "email",
    "uuid",
    "uri",
    "hostname",
    "ipv4",
    "ipv6",
    "byte",
    "int32",
    "int64",
}
UPPER_BOUNDS = ("maxLength", "maxItems", "maxProperties", "maximum")
LOWER_BOUNDS = ("minLength", "minItems", "minProperties", "minimum")


@dataclass(frozen=True)
class Change:
    breaking: bool
    where: str
    what: str

    def __str__(self) -> str:
        return f"{'BREAKING' if self.breaking else 'note'}: {self.where}: {self.what}"


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values (so True is not 1)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _values(values: list[Any]) -> str:
    return ", ".join(json.dumps(v) for v in values)


def _missing(values: list[Any], among: list[Any]) -> list[Any]:
    return [v for v in values if not any(_same(v, w) for w in among)]


@dataclass
class Document:
    """A parsed OpenAPI document that follows its own `#/...` references."""

    root: Node

    def resolve(self, node: Any) -> Any:
        seen: set[str] = set()
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#/"):
                raise ValueError(f"only local references are supported, not {ref!r}")
            if ref in seen:
                raise ValueError(f"circular reference {ref}")
            seen.add(ref)
            node = self.root
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def schema(self, node: Any) -> Node:
        """The schema with its references followed and its allOf members merged in."""
        schema = self.resolve(node) if node is not None else {}
        if not isinstance(schema, dict):
            raise ValueError(f"not a schema: {schema!r}")
        if "allOf" not in schema:
            return schema
        merged: Node = {k: v for k, v in schema.items() if k != "allOf"}
        for member in schema["allOf"]:
            part = self.schema(member)
            for key, value in part.items():
                if key == "properties":
                    merged["properties"] = {**value, **merged.get("properties", {})}
                elif key == "required":
                    merged["required"] = sorted({*merged.get("required", []), *value})
                else:
                    merged.setdefault(key, value)
        return merged

    def alternatives(self, node: Any) -> list[Node]:
        """The schemas a value may match: the oneOf/anyOf branches, or the schema itself."""
        schema = self.schema(node)
        for keyword in ("oneOf", "anyOf"):
            if keyword in schema:
                rest = {k: v for k, v in schema.items() if k != keyword}
                return [self.schema({"allOf": [rest, branch]}) for branch in schema[keyword]]
        return [schema]

    def operations(self) -> Iterator[tuple[str, str, Node, Node]]:
        """(key, label, path item, operation); the key ignores path parameter names."""
        for path, item in self.root.get("paths", {}).items():
            item = self.resolve(item)
            for method in METHODS:
                if method in item:
                    key = f"{method.upper()} {re.sub(r'{[^}]*}', '{}', path)}"
                    yield key, f"{method.upper()} {path}", item, item[method]

    def parameters(self, path: str, item: Node, operation: Node) -> dict[tuple[str, str], Node]:
        """The operation's parameters by (in, name); path parameters by position instead."""
        slots = re.findall(r"{([^}]*)}", path.split(" ", 1)[1])
        found: dict[tuple[str, str], Node] = {}
        for raw in [*item.get("parameters", []), *operation.get("parameters", [])]:
            parameter = self.resolve(raw)
            where, name = parameter["in"], parameter["name"]
            if where == "path" and name in slots:
                name = f"#{slots.index(name) + 1}"
            elif where == "header":
                name = name.lower()
            found[(where, name)] = parameter
        return found

    def security(self, operation: Node) -> list[frozenset[str]]:
        requirements: list[Node] = operation.get("security", self.root.get("security")) or []
        return [frozenset(requirement) for requirement in requirements] or [frozenset()]


@dataclass
class Comparison:
    old: Document
    new: Document
    changes: list[Change] = field(default_factory=list)
    # Schema pairs being compared further up, so recursive schemas end.
    _active: set[tuple[int, int, str]] = field(default_factory=set)

    def breaking(self, where: str, what: str) -> None:
        self.changes.append(Change(True, where, what))

    def note(self, where: str, what: str) -> None:
        self.changes.append(Change(False, where, what))

    def run(self) -> list[Change]:
        self.servers()
        new_operations = {key: (label, item, op) for key, label, item, op in self.new.operations()}
        new_paths = {key.split(" ", 1)[1] for key in new_operations}
        for key, label, item, operation in self.old.operations():
            if key not in new_operations:
                gone = "path" if key.split(" ", 1)[1] not in new_paths else "operation"
                self.breaking(label, f"{gone} removed")
                continue
            new_label, new_item, new_operation = new_operations[key]
            self.operation(label, (item, operation), (new_label, new_item, new_operation))
        return self.changes

    def servers(self) -> None:
        old = [s["url"] for s in self.old.root.get("servers", [{"url": "/"}])]
        new = [s["url"] for s in self.new.root.get("servers", [{"url": "/"}])]
        for url in old:
            if url not in new:
                self.breaking("servers", f"server {url} removed")

    def operation(self, label: str, old: tuple[Node, Node], new: tuple[str, Node, Node]) -> None:
        (old_item, op), (new_label, new_item, new_op) = old, new
        if op.get("operationId") != new_op.get("operationId"):
            self.note(
                label,
                f"operationId {op.get('operationId')} is now {new_op.get('operationId')} "
                "(generated SDKs rename the function)",
            )
        new_security = self.new.security(new_op)
        if frozenset() not in new_security:
            for requirement in self.old.security(op):
                if requirement not in new_security:
                    needs = " and ".join(sorted(requirement)) or "no credentials"
                    self.breaking(label, f"requests with {needs} are no longer accepted")
        self.parameters(
            label, self.old.parameters(label, old_item, op), new_label, new_item, new_op
        )
        self.request_body(label, op.get("requestBody"), new_op.get("requestBody"))
        self.responses(label, op.get("responses", {}), new_op.get("responses", {}))

    def parameters(
        self,
        label: str,
        old: dict[tuple[str, str], Node],
        new_label: str,
        new_item: Node,
        new_op: Node,
    ) -> None:
        new = self.new.parameters(new_label, new_item, new_op)
        for key, parameter in old.items():
            where = f"{label}: {key[0]} parameter {parameter['name']}"
            if key not in new:
                self.breaking(where, "removed")
                continue
            other = new[key]
            if other.get("required") and not parameter.get("required"):
                self.breaking(where, "now required")
            for keyword in ("style", "explode", "allowReserved"):
                if not _same(parameter.get(keyword), other.get(keyword)):
                    self.breaking(where, f"{keyword} changed")
            self.schema(where, _parameter_schema(parameter), _parameter_schema(other), "request")
        for key, parameter in new.items():
            if key not in old and parameter.get("required"):
                self.breaking(
                    f"{label}: {key[0]} parameter {parameter['name']}", "new and required"
                )

    def request_body(self, label: str, old_ref: Any, new_ref: Any) -> None:
        old, new = self.old.resolve(old_ref), self.new.resolve(new_ref)
        where = f"{label}: request body"
        if old is None:
            if new is not None and new.get("required"):
                self.breaking(where, "new and required")
            return
        if new is None:
            self.breaking(where, "no longer accepted")
            return
        if new.get("required") and not old.get("required"):
            self.breaking(where, "now required")
        for media, content in old.get("content", {}).items():
            if media not in new.get("content", {}):
                self.breaking(where, f"{media} no longer accepted")
                continue
            self.schema(
                f"{where} {media}",
                content.get("schema"),
                new["content"][media].get("schema"),
                "request",
            )

    def responses(self, label: str, old_statuses: Node, new_statuses: Node) -> None:
        # Status keys are strings in JSON; YAML reads an unquoted 200 as a number.
        old = {str(status): response for status, response in old_statuses.items()}
        new = {str(status): response for status, response in new_statuses.items()}
        old_success = [s for s in old if s.startswith("2")]
        new_success = [s for s in new if s.startswith("2")]
        for status in old_success:
            if status not in new:
                self.breaking(label, f"success status {status} no longer returned")
        if old_success:
            for status in new_success:
                if status not in old:
                    self.breaking(label, f"new success status {status}")
        for status, response in old.items():
            if status in new:
                self.response(f"{label}: {status}", response, new[status])

    def response(self, where: str, old_ref: Any, new_ref: Any) -> None:
        old, new = self.old.resolve(old_ref), self.new.resolve(new_ref)
        new_headers = {name.lower(): h for name, h in new.get("headers", {}).items()}
        for name, header_ref in old.get("headers", {}).items():
            header, other = self.old.resolve(header_ref), new_headers.get(name.lower())
            if other is None:
                self.breaking(where, f"header {name} no longer sent")
                continue
            other = self.new.resolve(other)
            if header.get("required") and not other.get("required"):
                self.breaking(where, f"header {name} may now be missing")
            self.schema(
                f"{where} header {name}", header.get("schema"), other.get("schema"), "response"
            )
        for media, content in old.get("content", {}).items():
            if media not in new.get("content", {}):
                self.breaking(where, f"no longer sent as {media}")
                continue
            self.schema(
                f"{where} {media}",
                content.get("schema"),
                new["content"][media].get("schema"),
                "response",
            )

    def schema(self, where: str, old_ref: Any, new_ref: Any, direction: str, at: str = "") -> None:
        """Compare two schemas: `request` values must stay accepted, `response` ones understood."""
        old_alts, new_alts = self.old.alternatives(old_ref), self.new.alternatives(new_ref)
        guard = (id(self.old.resolve(old_ref)), id(self.new.resolve(new_ref)), direction)
        if guard in self._active:
            return
        self._active.add(guard)
        try:
            if len(old_alts) == 1 and len(new_alts) == 1:
                self._one(where, old_alts[0], new_alts[0], direction, at)
                return
            # Each value the old side allowed (request), or the new side may send (response),
            # must fit one branch of the other side without a breaking difference.
            sources, targets = (
                (old_alts, new_alts) if direction == "request" else (new_alts, old_alts)
            )
            for index, source in enumerate(sources):
                if not any(self._fits(source, target, direction) for target in targets):
                    side = "old" if direction == "request" else "new"
                    self.breaking(
                        f"{where} {at}".rstrip(), f"{side} alternative {index + 1} has no match"
                    )
        finally:
            self._active.discard(guard)

    def _fits(self, source: Node, target: Node, direction: str) -> bool:
        trial = Comparison(self.old, self.new, _active=set(self._active))
        old, new = (source, target) if direction == "request" else (target, source)
        trial._one("", old, new, direction, "")
        return not any(change.breaking for change in trial.changes)

    def _one(self, where: str, old: Node, new: Node, direction: str, at: str) -> None:
        spot = f"{where} {at}".rstrip() if at else where
        if not _same(old.get("x-enum-varnames"), new.get("x-enum-varnames")):
            self.note(spot, "x-enum-varnames changed (generated SDKs rename the enum members)")
        if direction == "request":
            self._request(spot, old, new)
        else:
            self._response(spot, old, new)
        self._children(where, old, new, direction, at)

    def _request(self, spot: str, old: Node, new: Node) -> None:
        old_type, new_type = old.get("type"), new.get("type")
        if new_type and old_type != new_type and (old_type, new_type) != ("integer", "number"):
            self.breaking(spot, f"type {old_type or 'any'} is now {new_type}")
        if old.get("nullable") and not new.get("nullable"):
            self.breaking(spot, "null no longer accepted")
        if "enum" in new:
            if "enum" not in old:
                self.breaking(spot, f"now limited to {_values(new['enum'])}")
            elif removed := _missing(old["enum"], new["enum"]):
                self.breaking(spot, f"no longer accepts {_values(removed)}")
        new_format = new.get("format")
        if (
            new_format in CHECKED_FORMATS
            and new_format != old.get("format")
            and (old.get("format"), new_format) != ("int32", "int64")
        ):
            self.breaking(spot, f"format {old.get('format') or 'none'} is now {new_format}")
        if "pattern" in new and new["pattern"] != old.get("pattern"):
            self.breaking(
                spot, f"pattern {new['pattern']!r} {'changed' if 'pattern' in old else 'added'}"
            )
        for bound in UPPER_BOUNDS:
            if bound in new and (bound not in old or new[bound] < old[bound]):
                self.breaking(spot, f"{bound} {old.get(bound, 'none')} is now {new[bound]}")
        for bound in LOWER_BOUNDS:
            if bound in new and (bound not in old or new[bound] > old[bound]):
                self.breaking(spot, f"{bound} {old.get(bound, 'none')} is now {new[bound]}")
        for exclusive, bound in (("exclusiveMaximum", "maximum"), ("exclusiveMinimum", "minimum")):
            if (
                new.get(exclusive)
                and not old.get(exclusive)
                and _same(old.get(bound), new.get(bound))
            ):
                self.breaking(spot, f"{bound} {new.get(bound)} is now excluded")
        if "multipleOf" in new and (
            "multipleOf" not in old or old["multipleOf"] % new["multipleOf"]
        ):
            self.breaking(
                spot, f"multipleOf {old.get('multipleOf', 'none')} is now {new['multipleOf']}"
            )
        if new.get("uniqueItems") and not old.get("uniqueItems"):
            self.breaking(spot, "items must now be unique")
        if "default" in old and not _same(old["default"], new.get("default")):
            self.breaking(
                spot,
                f"default {json.dumps(old['default'])} is now {json.dumps(new.get('default'))}",
            )
        if (
            new.get("additionalProperties") is False
            and old.get("additionalProperties") is not False
        ):
            self.breaking(spot, "unknown members now rejected")
        readonly = {
            n for n, p in new.get("properties", {}).items() if self.new.schema(p).get("readOnly")
        }
        for name in sorted(set(new.get("required", [])) - set(old.get("required", [])) - readonly):
            new_or_now = "now" if name in old.get("properties", {}) else "new and"
            self.breaking(spot, f"field {name} {new_or_now} required")

    def _response(self, spot: str, old: Node, new: Node) -> None:
        old_type, new_type = old.get("type"), new.get("type")
        if old_type and old_type != new_type and (old_type, new_type) != ("number", "integer"):
            self.breaking(spot, f"type {old_type} is now {new_type or 'any'}")
        if new.get("nullable") and not old.get("nullable"):
            self.breaking(spot, "may now be null")
        if "enum" in old:
            if "enum" not in new:
                self.breaking(spot, f"no longer limited to {_values(old['enum'])}")
            else:
                if removed := _missing(old["enum"], new["enum"]):
                    self.breaking(spot, f"no longer returns {_values(removed)}")
                if added := _missing(new["enum"], old["enum"]):
                    self.note(spot, f"may now return {_values(added)}")
        if old.get("format") in CHECKED_FORMATS and old.get("format") != new.get("format"):
            self.breaking(spot, f"format {old['format']} is now {new.get('format') or 'none'}")
        writeonly = {
            n for n, p in old.get("properties", {}).items() if self.old.schema(p).get("writeOnly")
        }
        for name in sorted(set(old.get("required", [])) - set(new.get("required", [])) - writeonly):
            if name in new.get("properties", {}):
                self.breaking(spot, f"field {name} may now be missing")

    def _children(self, where: str, old: Node, new: Node, direction: str, at: str) -> None:
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        for name, prop in old_props.items():
            flag = "readOnly" if direction == "request" else "writeOnly"
            if self.old.schema(prop).get(flag):
                continue
            child = f"{at}.{name}" if at else name
            if name not in new_props:
                spot = f"{where} {at}".rstrip() if at else where
                gone = "no longer accepted" if direction == "request" else "removed"
                if direction == "request" and new.get("additionalProperties") is not False:
                    gone = "removed (the server would ignore it)"
                self.breaking(spot, f"field {name} {gone}")
                continue
            self.schema(where, prop, new_props[name], direction, child)
        if "items" in old or "items" in new:
            self.schema(where, old.get("items", {}), new.get("items", {}), direction, f"{at}[]")
        old_extra, new_extra = old.get("additionalProperties"), new.get("additionalProperties")
        if isinstance(old_extra, dict) and isinstance(new_extra, dict):
            self.schema(where, old_extra, new_extra, direction, f"{at}{{*}}")


def _parameter_schema(parameter: Node) -> Any:
    if "schema" in parameter:
        return parameter["schema"]
    for media in parameter.get("content", {}).values():
        return media.get("schema")
    return None


def compare(old: Node, new: Node) -> list[Change]:
    """Every difference between two OpenAPI 3.0 documents that a client of `old` would notice."""
    return Comparison(Document(old), Document(new)).run()


def load(path: Path) -> Node:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not an OpenAPI document")
    return document


@dataclass(frozen=True)
class AcceptedBreak:
    """A breaking change made on purpose in a minor release: a bound that closes a
    denial-of-service hole (CHANGELOG.md, "Versioning"). `change` is the end of the line the
    check prints for it, such as `description: maxLength none is now 10000`."""

    change: str
    why: str

    def covers(self, change: Change) -> bool:
        _, _, rest = change.where.partition(": ")
        return change.breaking and f"{rest}: {change.what}".endswith(self.change)


def load_accepted(path: Path) -> list[AcceptedBreak]:
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    return [AcceptedBreak(entry["change"], entry["why"]) for entry in entries]


def accept(
    changes: list[Change], accepted: list[AcceptedBreak]
) -> tuple[list[Change], list[AcceptedBreak]]:
    """The changes no accepted break covers, and the accepted breaks that covered none."""
    left = [c for c in changes if not any(a.covers(c) for a in accepted)]
    unused = [a for a in accepted if not any(a.covers(c) for c in changes)]
    return left, unused


def report(changes: list[Change], shown: int = 3) -> list[str]:
    """One line per difference, naming the operations it appears in (shared schemas repeat)."""
    groups: dict[tuple[bool, str, str], list[str]] = {}
    for change in changes:
        operation, _, rest = change.where.partition(": ")
        groups.setdefault((change.breaking, rest, change.what), []).append(operation)
    lines = []
    for (breaking, rest, what), operations in groups.items():
        names = ", ".join(operations[:shown])
        if len(operations) > shown:
            names += f" and {len(operations) - shown} more"
        spot = f"{rest}: " if rest else ""
        lines.append(f"{'BREAKING' if breaking else 'note'}: {spot}{what} [{names}]")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path, help="the released document (the baseline)")
    parser.add_argument("new", type=Path, help="the document to check")
    parser.add_argument(
        "--accept",
        type=Path,
        help="breaking changes made on purpose (openapi/accepted-breaks.yaml)",
    )
    args = parser.parse_args(argv)
    changes = compare(load(args.old), load(args.new))
    accepted = load_accepted(args.accept) if args.accept else []
    left, _ = accept(changes, accepted)
    taken = [change for change in changes if change not in left]
    for line in report(left):
        print(line)
    for line in report(taken):
        print(f"accepted {line}")
    broken = sum(change.breaking for change in left)
    print(
        f"{args.new} against {args.old}: {broken} breaking, {len(taken)} accepted breaking, "
        f"{len(left) - broken} notes"
    )
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
