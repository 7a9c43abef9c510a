"""The JSON Schema of the Workflow manifest, generated from the pydantic model.

``schemas/workflow.v1.schema.json`` is this function's output, written by ``agentflow schema``;
a test fails when the checked-in file drifts from the model. Editors use it through the
``# yaml-language-server: $schema=...`` comment at the top of a manifest.
"""

from __future__ import annotations

import json
from typing import Any

from agentflowd.manifest.model import Workflow

__all__ = ["SCHEMA_ID", "SCHEMA_URI", "workflow_schema", "workflow_schema_json"]

SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://agentflow.io/schemas/workflow.v1.schema.json"


def workflow_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) that manifests are validated against."""
    schema = Workflow.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": SCHEMA_URI, "$id": SCHEMA_ID, **schema}


def workflow_schema_json() -> str:
    """The schema as the text of ``schemas/workflow.v1.schema.json`` (stable, newline-ended)."""
    return json.dumps(workflow_schema(), indent=2, ensure_ascii=False) + "\n"
