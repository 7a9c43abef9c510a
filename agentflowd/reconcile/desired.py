"""From a loaded revision to the planner's inputs: desired workflows and unreadable files."""

from __future__ import annotations

from collections.abc import Mapping

from agentflowd.manifest import LoadReport, canonical_dict, spec_hash
from agentflowd.reconcile.plan import Actual, Desired
from agentflowd.store import StoredWorkflow

__all__ = ["actual_from_store", "broken_files", "desired_from_report"]


def desired_from_report(report: LoadReport) -> list[Desired]:
    """Every named manifest; valid ones carry their canonical spec and hash."""
    out: list[Desired] = []
    for manifest in report.manifests:
        if manifest.name is None:
            continue  # nameless documents are reported on the revision, not planned
        errors = tuple(d.to_dict() for d in manifest.diagnostics if d.severity.value == "error")
        if manifest.valid and manifest.workflow is not None:
            out.append(
                Desired(
                    name=manifest.name,
                    file=manifest.file,
                    line=manifest.line,
                    spec=canonical_dict(manifest.workflow),
                    spec_hash=spec_hash(manifest.workflow),
                )
            )
        else:
            file_errors = tuple(
                d.to_dict() for d in report.file_diagnostics if d.file == manifest.file
            )
            out.append(
                Desired(
                    name=manifest.name,
                    file=manifest.file,
                    line=manifest.line,
                    diagnostics=errors + file_errors,
                )
            )
    return out


def broken_files(report: LoadReport) -> frozenset[str]:
    """Files whose manifests cannot all be known: unreadable, or cut short by a fatal error."""
    broken = {d.file for d in report.file_diagnostics}
    broken.update(m.file for m in report.manifests if not m.file_ok)
    return frozenset(broken)


def actual_from_store(stored: Mapping[str, StoredWorkflow]) -> dict[str, Actual]:
    """The planner's view of the stored workflows."""
    return {
        name: Actual(
            name=name,
            origin=w.origin.value,
            spec_hash=w.spec_hash,
            file=w.file,
            pinned_revision=w.pinned_revision,
            has_error=w.last_error is not None,
        )
        for name, w in stored.items()
    }
