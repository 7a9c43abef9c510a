"""``agentflow schema``: print or write the JSON Schema of the Workflow manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentflowd.manifest import workflow_schema_json

__all__ = ["schema"]


def schema(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the schema to this file instead of stdout."),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if --output differs from the model.")
    ] = False,
) -> None:
    """Print the JSON Schema (draft 2020-12) of kind Workflow, generated from the model."""
    text = workflow_schema_json()
    if output is None:
        typer.echo(text, nl=False)
        return
    if check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            typer.echo(f"{output}: out of date; run `agentflow schema -o {output}`", err=True)
            raise typer.Exit(1)
        return
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {output}", err=True)
