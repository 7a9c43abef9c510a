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
from agentflowd.manifest import ImageLookup, Limits, SourceFile, load_sources

__all__ = ["run_validate", "validate", "work_tree"]


def work_tree(path: Path) -> Path | None:
    """The root of the git work tree that holds ``path``, if any."""
    import pygit2

    start = path if path.is_dir() else path.parent
    found = pygit2.discover_repository(str(start.resolve()))
    if found is None:
        return None
    workdir = pygit2.Repository(found).workdir
    return Path(workdir) if workdir else None


def run_validate(
    paths: Sequence[Path],
    *,
    fmt: OutputFormat = OutputFormat.TEXT,
    git: str | None = None,
    repo: Path = Path(),
    verbose: bool = False,
    limits: Limits | None = None,
    images_root: Path | None = None,
    notes: list[str] | None = None,
) -> tuple[str, int]:
    """Validate and render; returns the output and the exit code (0 valid, 1 invalid).

    Agent images are looked up in the commit (``git``), else under ``images_root``, else under
    the root of the git work tree holding the first path; outside any work tree they are not
    checked, and ``notes`` says so. Raises :class:`UsageError` when the paths or the git ref
    cannot be used at all.
    """
    limits = limits or Limits()
    commit = None
    sources: list[SourceFile]
    images: ImageLookup | None = None
    if git is not None:
        from agentflowd.source import read_commit  # pygit2 only when asked for

        try:
            snapshot = read_commit(repo, git, [str(p) for p in paths], limits)
        except SourceError as exc:
            raise UsageError(str(exc)) from exc
        sources, commit, images = snapshot.files, snapshot.commit, snapshot.images
    else:
        from agentflowd.source import DirectoryImages, discover_files

        if not paths:
            raise UsageError("give at least one PATH, or --git REF")
        for path in paths:
            if not path.exists() and not path.is_symlink():
                raise UsageError(f"{path}: no such file or directory")
        sources = discover_files(paths, limits)
        if images_root is not None:
            if not images_root.is_dir():
                raise UsageError(f"--images-root {images_root}: not a directory")
            images = DirectoryImages(images_root)
        elif (top := work_tree(paths[0])) is not None:
            images = DirectoryImages(top)
        elif notes is not None:
            notes.append(
                f"agent images not checked: {paths[0]} is not in a git work tree "
                "(pass --images-root DIR)"
            )
    report = load_sources(sources, limits, images=images)
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
    images_root: Annotated[
        Path | None,
        typer.Option(
            "--images-root",
            help="Where agent images (NAME/TAG/agent.py) are found; default: the git work "
            "tree's root.",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Validate Workflow manifests; print every problem as file:line:col."""
    notes: list[str] = []
    try:
        text, code = run_validate(
            paths or [],
            fmt=fmt,
            git=git,
            repo=repo,
            verbose=verbose,
            limits=Limits(max_bytes=max_bytes),
            images_root=images_root,
            notes=notes,
        )
    except UsageError as exc:
        typer.echo(f"agentflow validate: {exc}", err=True)
        raise typer.Exit(2) from exc
    for note in notes:
        typer.echo(f"agentflow validate: {note}", err=True)
    typer.echo(text, nl=False)
    raise typer.Exit(code)
