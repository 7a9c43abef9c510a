"""Rendering a load report for people (text), machines (json) and GitHub Actions (github)."""

from __future__ import annotations

import enum
import json
from datetime import datetime
from typing import Any

from agentflowd.manifest import (
    Diagnostic,
    LoadedManifest,
    LoadReport,
    Workflow,
    levels,
    spec_hash,
)

__all__ = ["OutputFormat", "render", "summary_line"]


class OutputFormat(enum.StrEnum):
    """Output formats of ``agentflow validate``."""

    TEXT = "text"
    JSON = "json"
    GITHUB = "github"


def summary_line(report: LoadReport) -> str:
    """One closing line: what was checked and whether it passed."""
    nfiles, nwf = len(report.files), len(report.manifests)
    valid = sum(1 for m in report.manifests if m.valid)
    if not report.files:
        return "FAILED: no manifest files (*.yaml, *.yml) found"
    errors = report.errors
    if not errors:
        return f"OK: {_n(nfiles, 'file')}, {_n(nwf, 'workflow')} valid"
    bad_files = len({d.file for d in errors})
    return (
        f"FAILED: {_n(len(errors), 'error')} in {bad_files} of {_n(nfiles, 'file')}; "
        f"{valid} of {_n(nwf, 'workflow')} valid"
    )


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def render(
    report: LoadReport,
    fmt: OutputFormat,
    *,
    verbose: bool = False,
    now: datetime,
    commit: str | None = None,
) -> str:
    """The whole output of ``agentflow validate`` in ``fmt``."""
    if fmt is OutputFormat.JSON:
        return json.dumps(_as_json(report, commit, now), indent=2) + "\n"
    lines = [_github(d) if fmt is OutputFormat.GITHUB else d.format() for d in report.diagnostics]
    if verbose:
        for manifest in report.manifests:
            lines.extend(_describe(manifest, now))
    if commit:
        lines.append(f"commit {commit}")
    lines.append(summary_line(report))
    return "\n".join(lines) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _github(diag: Diagnostic) -> str:
    """A GitHub Actions workflow command that annotates the file in the pull request."""
    level = "error" if diag.severity.value == "error" else "warning"
    props = [f"file={_escape_property(diag.file)}"]
    if diag.line > 0:
        props += [f"line={diag.line}", f"col={diag.col}"]
    props.append(f"title={_escape_property('agentflow ' + diag.code)}")
    where = f"{diag.path}: " if diag.path else ""
    return f"::{level} {','.join(props)}::{_escape_data(where + diag.message)}"


def _describe(manifest: LoadedManifest, now: datetime) -> list[str]:
    status = "valid" if manifest.valid else "INVALID"
    head = f"{manifest.file}:{manifest.line}: workflow {manifest.name or '?'} ({status})"
    wf = manifest.workflow
    if wf is None or not manifest.valid:
        return [head]
    out = [head]
    stages = " -> ".join("[" + ", ".join(level) + "]" for level in levels(wf))
    out.append(f"  agents:   {len(wf.spec.agents)} in {len(levels(wf))} stages: {stages}")
    out.extend(f"  trigger:  {trig}" for trig in _triggers(wf, now))
    out.append(f"  hash:     {spec_hash(wf)[:16]}")
    return out


def _triggers(wf: Workflow, now: datetime) -> list[str]:
    out = []
    for trig in wf.spec.triggers:
        if trig.webhook is not None:
            hook = trig.webhook
            secret = f" (HMAC secret {hook.secret_ref.name})" if hook.secret_ref else " (unsigned)"
            out.append(f"webhook {trig.webhook.method.value} {trig.webhook.path}{secret}")
        elif trig.schedule is not None:
            nxt = trig.schedule.compile().next_fire_times(now, 1)
            when = f", next {nxt[0].isoformat()}" if nxt else ""
            out.append(f"cron '{trig.schedule.cron}' {trig.schedule.timezone}{when}")
    return out or ["none (manual runs only)"]


def _as_json(report: LoadReport, commit: str | None, now: datetime) -> dict[str, Any]:
    workflows = []
    for m in report.manifests:
        entry: dict[str, Any] = {
            "name": m.name,
            "file": m.file,
            "line": m.line,
            "document": m.document,
            "valid": m.valid,
        }
        if m.valid and m.workflow is not None:
            entry["hash"] = spec_hash(m.workflow)
            entry["agents"] = [a.name for a in m.workflow.spec.agents]
            entry["triggers"] = _triggers(m.workflow, now)
        workflows.append(entry)
    return {
        "valid": report.valid and bool(report.files),
        "commit": commit,
        "files": report.files,
        "workflows": workflows,
        "diagnostics": [d.to_dict() for d in report.diagnostics],
        "summary": summary_line(report),
    }
