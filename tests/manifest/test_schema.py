"""The JSON Schema: generated from the model, checked in, and agreeing with the loader."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agentflowd.manifest import SourceFile, load_sources, workflow_schema, workflow_schema_json
from agentflowd.manifest.yamlread import read_yaml
from tests.manifests import VALID

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schemas" / "workflow.v1.schema.json"
EXAMPLES = sorted((ROOT / "examples" / "workflows").glob("*.yaml"))


def test_checked_in_schema_matches_the_model():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == workflow_schema_json(), (
        "schemas/workflow.v1.schema.json is out of date: run `make schema`"
    )


def test_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(workflow_schema())


def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


def test_there_are_examples():
    assert {p.name for p in EXAMPLES} >= {
        "customer-support.yaml",
        "data-analysis.yaml",
        "content-generation.yaml",
        "research-assistant.yaml",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates_under_jsonschema_and_the_loader(path):
    data = path.read_bytes()
    first_line = data.decode().splitlines()[0]
    assert first_line == "# yaml-language-server: $schema=../../schemas/workflow.v1.schema.json"
    for doc in read_yaml(data, path.name).documents:
        errors = list(validator().iter_errors(doc.data))
        assert errors == [], [e.message for e in errors]
    assert load_sources([SourceFile(path=path.name, data=data)]).valid


def _valid_data() -> dict[str, Any]:
    data: dict[str, Any] = read_yaml(VALID.encode(), "v.yaml").documents[0].data
    return data


@pytest.mark.parametrize(
    "mutation",
    [
        lambda d: d["spec"]["agents"][0].update(dependOn=["x"]),
        lambda d: d["spec"]["agents"][0]["resources"].update(memory="lots"),
        lambda d: d["spec"]["agents"][0]["llm"].update(provider="opnai"),
        lambda d: d["metadata"].update(name="Not_A_Label"),
        lambda d: d["spec"]["triggers"].append({}),
        lambda d: d["spec"]["triggers"][0].update(schedule="@daily"),
        lambda d: d.update(kind="Pipeline"),
        lambda d: d["spec"].update(agents=[]),
    ],
    ids=[
        "unknown-field",
        "memory",
        "provider",
        "name",
        "empty-trigger",
        "two-trigger-kinds",
        "kind",
        "no-agents",
    ],
)
def test_schema_and_loader_both_refuse(mutation):
    data = copy.deepcopy(_valid_data())
    mutation(data)
    assert list(validator().iter_errors(data)), "the schema accepted it"
    text = json.dumps(data)  # JSON is YAML
    assert not load_sources([SourceFile(path="m.yaml", data=text.encode())]).valid
