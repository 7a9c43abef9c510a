"""Printing API results: ``-o table`` (default), ``json`` or ``yaml``, and one-line errors."""

from __future__ import annotations

import enum
import io
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer

from agentflowd.errors import AccessError, AgentFlowError, ConflictError, NotFound, UsageError

__all__ = ["Column", "Output", "api_errors", "emit"]


class Output(enum.StrEnum):
    """Output formats of read commands."""

    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


Column = tuple[str, Callable[[dict[str, Any]], object]]


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def emit(data: Any, fmt: Output, columns: Sequence[Column] | None = None) -> None:
    """Print ``data`` (a dict or a list of dicts) in ``fmt``."""
    if fmt is Output.JSON:
        typer.echo(json.dumps(data, indent=2))
        return
    if fmt is Output.YAML or columns is None:
        from ruamel.yaml import YAML

        yaml = YAML(typ="safe", pure=True)
        yaml.default_flow_style = False
        out = io.StringIO()
        yaml.dump(data, out)
        typer.echo(out.getvalue(), nl=False)
        return
    rows = data if isinstance(data, list) else [data]
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold" if sys.stdout.isatty() else "")
    for title, _ in columns:
        table.add_column(title.upper(), overflow="fold")
    for row in rows:
        table.add_row(*(_cell(get(row)) for _, get in columns))
    Console(soft_wrap=True).print(table)


@contextmanager
def api_errors(command: str) -> Iterator[None]:
    """Turn API errors into one line on stderr and the documented exit codes."""
    try:
        yield
    except NotFound as exc:
        typer.echo(f"agentflow {command}: {exc}", err=True)
        raise typer.Exit(3) from exc
    except UsageError as exc:
        typer.echo(f"agentflow {command}: {exc}", err=True)
        raise typer.Exit(2) from exc
    except AccessError as exc:
        hint = " (agentflow auth login)" if "credentials" in str(exc) else ""
        typer.echo(f"agentflow {command}: {exc}{hint}", err=True)
        raise typer.Exit(1) from exc
    except (ConflictError, AgentFlowError) as exc:
        typer.echo(f"agentflow {command}: {exc}", err=True)
        raise typer.Exit(1) from exc
