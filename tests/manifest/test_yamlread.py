"""The safe YAML reader: positions, YAML 1.2 scalars, and hostile input refused cheaply."""

from __future__ import annotations

import pytest

from agentflowd.manifest.yamlread import Limits, Mark, read_yaml


def read(text: str | bytes, limits: Limits | None = None):
    return read_yaml(text.encode() if isinstance(text, str) else text, "f.yaml", limits)


def test_values_keep_their_positions():
    result = read("a:\n  b: [1, two]\n  c: {d: x}\n")
    (doc,) = result.documents
    assert doc.data == {"a": {"b": [1, "two"], "c": {"d": "x"}}}
    assert doc.mark_for(("a", "b", 1)) == Mark(2, 10)
    assert doc.mark_for(("a", "c", "d")) == Mark(3, 10)
    assert doc.mark_for(("a", "c", "d"), key=True) == Mark(3, 7)
    assert doc.mark_for(("a", "missing", 3)) == Mark(2, 3)  # nearest known ancestor


@pytest.mark.parametrize(
    ("scalar", "value"),
    [
        ("yes", "yes"),  # YAML 1.2: the "Norway problem" does not exist
        ("on", "on"),
        ("true", True),
        ("0x1f", 31),
        ("0o17", 15),
        ("1.5", 1.5),
        ("~", None),
        ("null", None),
        ("2024-01-01", "2024-01-01"),
        ("'007'", "007"),
        ("!!str 5", "5"),
    ],
)
def test_scalars_resolve_as_yaml_1_2(scalar, value):
    assert read(f"k: {scalar}\n").documents[0].data == {"k": value}


def test_multi_document_files_and_empty_documents():
    result = read("---\n---\na: 1\n---\nb: 2\n...\n")
    assert [d.data for d in result.documents] == [{"a": 1}, {"b": 2}]
    assert [d.index for d in result.documents] == [1, 2]
    assert [d.start.line for d in result.documents] == [2, 4]


def test_anchors_aliases_and_merge_keys():
    doc = read("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n").documents[0]
    assert doc.data["use"] == {"x": 1, "y": 3}


def test_duplicate_keys_name_both_lines():
    (doc,) = read("a: 1\nb: 2\na: 3\n").documents
    (diag,) = doc.diagnostics
    assert (diag.line, diag.col, diag.code) == (3, 1, "yaml-duplicate-key")
    assert "first defined at line 1" in diag.message


def test_billion_laughs_is_refused_before_it_expands():
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    # expanded, it would be 9**10 values (and end as yaml-too-many-nodes, if ever); how fast
    # it is refused is measured by bench/validate.py ("refuse a billion-laughs file")
    result = read("\n".join(lines) + "\n")
    assert result.fatal
    assert [d.code for d in result.diagnostics] == ["yaml-alias-bomb"]


@pytest.mark.parametrize("depth", [65, 100_000])
def test_deep_nesting_is_refused_without_crashing(depth):
    # libyaml's C composer recurses per level and segfaults near 100,000 levels.
    result = read("a: " + "[" * depth + "]" * depth + "\n")
    assert [d.code for d in result.diagnostics] == ["yaml-too-deep"]
    assert "deeper than 64 levels" in result.diagnostics[0].message


def test_nesting_at_the_limit_is_accepted():
    depth = 63  # plus the top-level mapping = 64
    result = read("a: " + "[" * depth + "]" * depth + "\n")
    assert not result.fatal


def test_too_many_values_are_refused():
    text = "k: [" + ", ".join(["1"] * 200) + "]\n"
    result = read(text, Limits(max_nodes=100))
    assert [d.code for d in result.diagnostics] == ["yaml-too-many-nodes"]


def test_utf8_bom_is_accepted_and_other_encodings_refused():
    assert read(b"\xef\xbb\xbfa: 1\n").documents[0].data == {"a": 1}
    result = read("a: 1\n".encode("utf-16"))
    assert [d.code for d in result.diagnostics] == ["not-utf8"]


def test_control_characters_are_refused_with_a_position():
    result = read("a: ok\nb: x\x07y\n")
    (diag,) = result.diagnostics
    assert (diag.line, diag.col) == (2, 5)
    assert "U+0007" in diag.message


@pytest.mark.parametrize(
    "text",
    ["? [a, b]\n: 1\n", "? {a: 1}\n: 1\n", "a: &x 1\n*x : 2\n"],
    ids=["sequence-key", "mapping-key", "alias-key"],
)
def test_complex_keys_are_refused(text):
    assert [d.code for d in read(text).diagnostics] == ["yaml-complex-key"]


def test_custom_tags_are_refused():
    for text in ["a: !!python/object:os.system x\n", "a: !secret x\n", "a: !!set {x}\n"]:
        assert [d.code for d in read(text).diagnostics] == ["yaml-tag"], text


def test_explicit_merge_tag():
    assert read("b: 1\n!!merge <<: {a: 1}\n").documents[0].data == {"a": 1, "b": 1}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: !!int abc\n", "'abc' is not a valid int"),
        ("a: !!bool maybe\n", "not a valid bool"),
        ("a: !!float x\n", "not a valid float"),
        ('a: !!int ""\n', "'' is not a valid int"),
    ],
)
def test_explicit_tags_on_bad_text_are_diagnostics(text, fragment):
    (diag,) = read(text).diagnostics
    assert diag.code == "yaml-bad-scalar" and fragment in diag.message
