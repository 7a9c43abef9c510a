"""``agentflow validate``: check manifests on disk or in a git commit, as CI and editors need.

Exit code 0 when everything is valid, 1 when anything is invalid, 2 on a usage error.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from agentflowd.cli.report import OutputFormat, render
from agentflowd.errors import SourceError, UsageError
from agentflowd.manifest import Limits, SourceFile, load_sources

__all__ = ["run_validate", "validate"]


def run_validate(
    paths: Sequence[Path],
    *,
    fmt: OutputFormat = OutputFormat.TEXT,
    git: str | None = None,
    repo: Path = Path(),
    verbose: bool = False,
    limits: Limits | None = None,
) -> tuple[str, int]:
    """Validate and render; returns the output and the exit code (0 valid, 1 invalid).

    Raises :class:`UsageError` when the paths or the git ref cannot be used at all.
    """
    limits = limits or Limits()
    commit = None
    sources: list[SourceFile]
    if git is not None:
        from agentflowd.source import read_commit  # pygit2 only when asked for

        try:
            snapshot = read_commit(repo, git, [str(p) for p in paths], limits)
        except SourceError as exc:
            raise UsageError(str(exc)) from exc
        sources, commit = snapshot.files, snapshot.commit
    else:
        from agentflowd.source import discover_files

        if not paths:
            raise UsageError("give at least one PATH, or --git REF")
        for path in paths:
            if not path.exists() and not path.is_symlink():
                raise UsageError(f"{path}: no such file or directory")
        sources = discover_files(paths, limits)
    report = load_sources(sources, limits)
    text = render(report, fmt, verbose=verbose, now=datetime.now(UTC), commit=commit)
    return text, 0 if report.valid and report.files else 1


def validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Files or directories (walked recursively for *.yaml, *.yml). With --git: "
            "paths inside the repository.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="text, json, or github annotations.")
    ] = OutputFormat.TEXT,
    git: Annotated[
        str | None,
        typer.Option("--git", metavar="REF", help="Validate the manifests of a git commit."),
    ] = None,
    repo: Annotated[
        Path, typer.Option("--repo", help="The git repository for --git.", file_okay=False)
    ] = Path(),
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also describe each workflow found.")
    ] = False,
    max_bytes: Annotated[
        int, typer.Option("--max-file-size", help="Refuse files larger than this (bytes).", min=1)
    ] = Limits().max_bytes,
) -> None:
    """Validate Workflow manifests; print every problem as file:line:col."""
    try:
        text, code = run_validate(
            paths or [],
            fmt=fmt,
            git=git,
            repo=repo,
            verbose=verbose,
            limits=Limits(max_bytes=max_bytes),
        )
    except UsageError as exc:
        typer.echo(f"agentflow validate: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(text, nl=False)
    raise typer.Exit(code)
