"""Safe YAML reading that keeps the file:line:col of every value.

We drive ruamel.yaml's parser (libyaml's C parser when ``ruamel.yaml.clib`` is installed) event by
event and build plain Python values ourselves, instead of letting a composer build a node tree:

* **Hostile input is refused early.** libyaml's C composer recurses once per nesting level and
  crashes the process (SIGSEGV, measured at 100,000 levels, a 200 KB file). Walking events with an
  explicit stack lets us stop at ``max_depth``. Aliases are shared, never copied, and their
  expanded size is counted, so a billion-laughs file stops at ``max_nodes`` in microseconds.
* **Every value keeps its position**, keyed by its field path, so pydantic's errors and the
  semantic checks can name ``file:line:col``.
* **Duplicate keys are errors** that name both lines; ruamel's composer does not see them.

Scalars are resolved by ruamel's YAML 1.2 resolver (``yes``/``on`` are strings, not booleans) and
built by its SafeConstructor. Only the core tags are accepted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.reader import ReaderError

from agentflowd.manifest.diagnostics import Diagnostic, format_path

__all__ = ["Document", "Limits", "Mark", "ReadResult", "read_yaml"]

Path = tuple[str | int, ...]

_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_CORE}{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")}
_MAP_TAGS = {None, "!", f"{_CORE}map"}
_SEQ_TAGS = {None, "!", f"{_CORE}seq"}


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Hard caps that keep a hostile file (or repository) from costing more than a normal one."""

    max_bytes: int = 1024 * 1024
    max_depth: int = 64
    max_nodes: int = 100_000
    max_files: int = 10_000  # manifest files in one revision
    max_total_bytes: int = 100 * 1024 * 1024  # of all manifest files in one revision


class Mark(NamedTuple):
    """A 1-based line and column in the file."""

    line: int
    col: int


@dataclass(kw_only=True)
class Document:
    """One YAML document: its plain data and the position of every value and mapping key."""

    index: int
    data: Any
    start: Mark
    marks: dict[Path, Mark] = field(default_factory=dict)
    key_marks: dict[Path, Mark] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def mark_for(self, path: Path, *, key: bool = False) -> Mark:
        """The position of ``path`` (its key if ``key``), else of its nearest known ancestor."""
        if key and path in self.key_marks:
            return self.key_marks[path]
        probe = tuple(path)
        while probe:
            if probe in self.marks:
                return self.marks[probe]
            probe = probe[:-1]
        return self.marks.get((), self.start)


@dataclass(kw_only=True)
class ReadResult:
    """The documents read from one file and the file-level problem that stopped reading.

    Problems inside a document that did not stop reading (duplicate keys) are in that
    document's own ``diagnostics``.

    ``fatal`` is set when the file could not be read to its end (syntax error, a cap hit): the
    documents before the problem are still returned so their own errors can be reported, but the
    file as a whole must not be applied.
    """

    documents: list[Document]
    diagnostics: list[Diagnostic]
    fatal: bool


class _Abort(Exception):
    def __init__(self, mark: Mark, message: str, code: str) -> None:
        super().__init__(message)
        self.mark, self.message, self.code = mark, message, code


@dataclass(slots=True)
class _Frame:
    kind: str  # "map" | "seq"
    value: Any
    path: Path
    size: int = 1
    key: str | None = None
    key_mark: Mark | None = None
    is_merge: bool = False
    merges: list[dict[str, Any]] = field(default_factory=list)
    first_lines: dict[str, int] = field(default_factory=dict)
    anchor: str | None = None
    mark: Mark = Mark(0, 0)


_yaml = YAML(typ="safe", pure=False)
_constructor = _yaml.constructor
try:  # libyaml through ruamel.yaml.clib: a fresh parser per call, no shared state
    from _ruamel_yaml import CParser as _CParser
except ImportError:  # pragma: no cover - the pure-Python parser, ~8x slower
    _CParser = None


def _events(text: str) -> Iterator[Any]:
    """Parse events of ``text``. A new parser each call: safe from any thread, and nothing
    accumulates (``YAML.parse`` appends to ``doc_infos`` on every call, forever)."""
    if _CParser is None:  # pragma: no cover
        yield from YAML(typ="safe", pure=True).parse(text)
        return
    parser = _CParser(text)
    try:
        while parser.check_event():
            yield parser.get_event()
    finally:
        parser.dispose()


# ruamel's YAML 1.2 implicit-resolver table, read once: first character -> [(tag, regexp)].
# Going through Resolver.resolve() costs a property lookup chain per scalar (a fifth of the
# load time of a typical manifest); the table and the matching are ruamel's own.
_IMPLICIT: dict[str, list[tuple[str, Any]]] = _yaml.resolver.versioned_resolver


def _resolve_plain(value: str) -> str:
    for tag, regexp in _IMPLICIT.get(value[:1], ()):
        if regexp.match(value):
            return str(tag)
    return f"{_CORE}str"


def _mark(ev: Any) -> Mark:
    start = ev.start_mark
    return Mark(start.line + 1, start.column + 1)


def read_yaml(data: bytes, file: str, limits: Limits | None = None) -> ReadResult:
    """Read every document of ``data``; never raises for bad input, only reports it."""
    limits = limits or Limits()
    diags: list[Diagnostic] = []
    docs: list[Document] = []

    def fatal(message: str, code: str, line: int = 0, col: int = 0) -> ReadResult:
        diags.append(Diagnostic(file=file, line=line, col=col, message=message, code=code))
        return ReadResult(documents=docs, diagnostics=diags, fatal=True)

    if len(data) > limits.max_bytes:
        return fatal(
            f"file is {len(data):,} bytes, over the limit of {limits.max_bytes:,} bytes",
            "file-too-large",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return fatal(
            f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            "not-utf8",
            line,
            col,
        )
    try:
        # One at a time: documents read before a fatal problem are kept and still reported.
        for doc in _documents(text, limits, file):
            docs.append(doc)  # noqa: PERF402
    except _Abort as exc:
        return fatal(exc.message, exc.code, exc.mark.line, exc.mark.col)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        return fatal(_syntax_message(exc, text, line, col), "yaml-syntax", line, col)
    except ReaderError as exc:
        # libyaml counts bytes of the UTF-8 text; report characters, as editors do
        raw = text.encode("utf-8")
        pos = exc.position
        line = raw.count(b"\n", 0, pos) + 1
        start = raw.rfind(b"\n", 0, pos) + 1
        col = len(raw[start:pos].decode("utf-8", "replace")) + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return fatal(
            f"control character U+{char:04X} is not allowed in YAML", "yaml-syntax", line, col
        )
    except YAMLError as exc:  # pragma: no cover - other parser errors carry no mark
        return fatal(f"YAML error: {exc}", "yaml-syntax")
    return ReadResult(documents=docs, diagnostics=diags, fatal=False)


def _syntax_message(exc: MarkedYAMLError, text: str, line: int, col: int) -> str:
    lines = text.splitlines()
    if 0 < line <= len(lines):
        indent = lines[line - 1][: len(lines[line - 1]) - len(lines[line - 1].lstrip(" \t"))]
        if "\t" in indent and col <= len(indent) + 1:
            return "tab character in indentation; YAML indents with spaces only"
    problem = exc.problem or "invalid YAML"
    context = f" ({exc.context})" if exc.context else ""
    return f"YAML syntax error: {problem}{context}"


def _documents(text: str, limits: Limits, file: str) -> Iterator[Document]:
    anchors: dict[str, tuple[Any, int]] = {}
    stack: list[_Frame] = []
    doc: Document | None = None
    index = 0
    nodes = 0

    def add(value: Any, mark: Mark, size: int, anchor: str | None) -> None:
        """Attach a finished value to the collection on top of the stack (or the document)."""
        nonlocal nodes
        assert doc is not None
        if anchor is not None:
            anchors[anchor] = (value, size)
        if not stack:
            doc.data = value
            doc.marks[()] = mark
            return
        top = stack[-1]
        top.size += size
        if top.kind == "seq":
            path = (*top.path, len(top.value))
            doc.marks[path] = mark
            top.value.append(value)
            return
        if top.key is None:
            raise _Abort(mark, "mapping keys must be plain scalars", "yaml-complex-key")
        key, key_mark, is_merge = top.key, top.key_mark, top.is_merge
        top.key, top.key_mark, top.is_merge = None, None, False
        if is_merge:
            merged = value if isinstance(value, list) else [value]
            if not all(isinstance(m, dict) for m in merged):
                raise _Abort(mark, "'<<' merges only mappings", "yaml-bad-merge")
            top.merges.extend(merged)
            return
        path = (*top.path, key)
        if key in top.value:
            first = top.first_lines[key]
            assert key_mark is not None
            doc.diagnostics.append(
                Diagnostic(
                    file=file,
                    line=key_mark.line,
                    col=key_mark.col,
                    path=format_path(path),
                    message=f"duplicate key {key!r} (first defined at line {first})",
                    code="yaml-duplicate-key",
                )
            )
        else:
            assert key_mark is not None
            top.first_lines[key] = key_mark.line
            doc.key_marks[path] = key_mark
        doc.marks[path] = mark
        top.value[key] = value

    def child_path() -> Path:
        if not stack:
            return ()
        top = stack[-1]
        if top.kind == "seq":
            return (*top.path, len(top.value))
        return (*top.path, top.key if top.key is not None else "?")

    # Pull events straight from the C parser (a generator in between costs ~20% here).
    parser = _CParser(text) if _CParser is not None else None
    stream = None if parser is not None else _events(text)
    while True:
        if parser is not None:
            ev = parser.get_event()
        else:  # pragma: no cover - pure-Python fallback
            assert stream is not None
            ev = next(stream, None)
        if ev is None:
            break
        kind = type(ev)
        if kind is ScalarEvent:
            mark = _mark(ev)
            nodes += 1
            top = stack[-1] if stack else None
            if top is not None and top.kind == "map" and top.key is None:
                explicit_merge = ev.tag == f"{_CORE}merge"
                if ev.anchor is not None or ev.tag not in (
                    None,
                    "!",
                    f"{_CORE}str",
                    f"{_CORE}merge",
                ):
                    raise _Abort(mark, "mapping keys must be plain strings", "yaml-complex-key")
                top.key, top.key_mark = ev.value, mark
                top.is_merge = explicit_merge or (ev.value == "<<" and ev.implicit[0])
                continue
            add(_scalar(ev, mark), mark, 1, ev.anchor)
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            mark = _mark(ev)
            nodes += 1
            is_map = kind is MappingStartEvent
            if ev.tag not in (_MAP_TAGS if is_map else _SEQ_TAGS):
                raise _Abort(mark, f"unsupported YAML tag {ev.tag!r}", "yaml-tag")
            if stack and stack[-1].kind == "map" and stack[-1].key is None:
                raise _Abort(mark, "mapping keys must be plain scalars", "yaml-complex-key")
            if len(stack) >= limits.max_depth:
                raise _Abort(
                    mark, f"nesting is deeper than {limits.max_depth} levels", "yaml-too-deep"
                )
            stack.append(
                _Frame(
                    kind="map" if is_map else "seq",
                    value={} if is_map else [],
                    path=child_path(),
                    anchor=ev.anchor,
                    mark=mark,
                )
            )
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            frame = stack.pop()
            if frame.merges:
                explicit = frame.value
                combined: dict[str, Any] = {}
                for merged in reversed(frame.merges):
                    combined.update(merged)
                combined.update(explicit)
                frame.value = combined
            add(frame.value, frame.mark, frame.size, frame.anchor)
        elif kind is AliasEvent:
            mark = _mark(ev)
            if ev.anchor not in anchors:
                raise _Abort(mark, f"unknown alias *{ev.anchor}", "yaml-alias")
            if stack and stack[-1].kind == "map" and stack[-1].key is None:
                raise _Abort(mark, "mapping keys must be plain scalars", "yaml-complex-key")
            value, size = anchors[ev.anchor]
            nodes += size
            if nodes > limits.max_nodes:
                raise _Abort(
                    mark,
                    f"alias *{ev.anchor} expands the document past {limits.max_nodes:,} values "
                    "(a 'billion laughs' file?)",
                    "yaml-alias-bomb",
                )
            add(value, mark, size, None)
        elif kind is DocumentStartEvent:
            doc = Document(index=index, data=None, start=_mark(ev))
            anchors.clear()
            nodes = 0
        elif kind is DocumentEndEvent:
            assert doc is not None
            index += 1
            if doc.data is not None:
                yield doc
            doc = None
        if nodes > limits.max_nodes:
            raise _Abort(
                _mark(ev),
                f"document has more than {limits.max_nodes:,} values",
                "yaml-too-many-nodes",
            )


def _scalar(ev: Any, mark: Mark) -> Any:
    tag = ev.tag
    if tag is None or tag == "!":
        tag = _resolve_plain(ev.value) if ev.implicit[0] else f"{_CORE}str"
    if tag not in _SCALAR_TAGS and tag != f"{_CORE}merge":
        raise _Abort(mark, f"unsupported YAML tag {tag!r}", "yaml-tag")
    if tag.endswith((":str", ":timestamp", ":merge")):
        return ev.value
    if tag.endswith(":null"):
        return None
    node = ScalarNode(tag, ev.value)
    kind = tag.rsplit(":", 1)[-1]
    build = {
        "int": _constructor.construct_yaml_int,
        "float": _constructor.construct_yaml_float,
        "bool": _constructor.construct_yaml_bool,
    }[kind]
    try:
        value = build(node)
    except (ValueError, IndexError, KeyError, OverflowError, TypeError):
        # explicit tags on text that is no such value (`!!int abc`), or ints past Python's
        # 4,300-digit conversion limit
        shown = ev.value if len(ev.value) <= 40 else ev.value[:40] + "…"
        raise _Abort(mark, f"{shown!r} is not a valid {kind}", "yaml-bad-scalar") from None
    if kind == "bool" and not isinstance(value, bool):  # pragma: no cover - defensive
        raise _Abort(mark, f"{ev.value!r} is not a valid bool", "yaml-bad-scalar")
    return value
