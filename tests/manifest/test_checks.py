"""Semantic checks within a workflow and across a repository."""

from __future__ import annotations

import pytest

from agentflowd.manifest import SourceFile, load_sources
from agentflowd.manifest.checks import find_cycles
from tests.manifests import VALID, named


@pytest.mark.parametrize(
    ("graph", "cycles"),
    [
        ({"a": [], "b": ["a"]}, []),
        ({"a": ["a"]}, [["a", "a"]]),
        ({"a": ["b"], "b": ["a"]}, [["a", "b", "a"]]),
        ({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}, [["a", "b", "c", "a"]]),
        ({"a": ["b", "c"], "b": ["a"], "c": ["a"]}, [["a", "b", "a"], ["a", "c", "a"]]),
        ({"x": ["y"], "y": [], "p": ["q"], "q": ["p"]}, [["p", "q", "p"]]),
    ],
    ids=["dag", "self", "pair", "triangle-with-tail", "two-cycles", "separate-components"],
)
def test_find_cycles(graph, cycles):
    assert find_cycles(graph) == cycles


def test_a_long_chain_does_not_exhaust_the_stack():
    graph = {f"n{i}": [f"n{i + 1}"] for i in range(5000)}
    graph["n5000"] = ["n0"]
    (cycle,) = find_cycles(graph)
    assert len(cycle) == 5002


def load(**files: str):
    return load_sources([SourceFile(path=p, data=t.encode()) for p, t in files.items()])


def test_workflow_names_are_unique_across_files_and_both_sides_are_invalid():
    report = load(**{"a.yaml": named("same", hook="/a"), "b.yaml": named("same", hook="/b")})
    assert [d.format() for d in report.errors] == [
        "a.yaml:4:9: error: metadata.name: workflow 'same' is also defined at b.yaml:4",
        "b.yaml:4:9: error: metadata.name: workflow 'same' is also defined at a.yaml:4",
    ]
    assert report.workflows() == []


def test_webhook_path_and_method_are_unique_across_the_repo():
    report = load(**{"a.yaml": named("one", hook="/h"), "b.yaml": named("two", hook="/h")})
    assert {d.code for d in report.errors} == {"duplicate-webhook"}
    assert "webhook POST /h is also used at b.yaml:31" in report.errors[0].message


def test_same_path_with_another_method_is_fine():
    other = named("two", hook="/h").replace("method: POST", "method: PUT")
    report = load(**{"a.yaml": named("one", hook="/h"), "b.yaml": other})
    assert report.valid


def test_multi_document_file_checks_across_its_documents():
    report = load(**{"all.yaml": named("one") + "---\n" + named("one", hook="/other")})
    assert [d.line for d in report.errors] == [4, 43]


def test_one_invalid_file_does_not_block_the_valid_ones():
    broken = VALID.replace("dependsOn: [respond]", "dependsOn: [nobody]")
    report = load(**{"good.yaml": named("good"), "bad.yaml": broken.replace("support", "bad")})
    assert [w.name for w in report.workflows()] == ["good"]
    assert [m.valid for m in report.manifests] == [True, False]


@pytest.mark.parametrize("path", ["/api/v1/sync", "/api/v1/workflows/x/executions", "/metrics"])
def test_webhook_paths_of_the_api_are_refused(path):
    from agentflowd.manifest import load_sources
    from agentflowd.manifest.load import SourceFile
    from tests.manifests import named

    text = named("a", hook=path)
    report = load_sources([SourceFile(path="a.yaml", data=text.encode())])
    [diag] = [d for d in report.diagnostics if d.code == "reserved-webhook-path"]
    assert diag.message == f"webhook path {path} is the daemon's own API; choose another path"
