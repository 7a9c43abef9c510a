"""Turning a revision's files into the planner's input, incrementally.

A commit usually changes one file among many. Everything derived from a file — its manifests
validated, their canonical JSON and hash, its diagnostics, the repository-wide claims it makes
(names, webhook routes) — depends only on its path and content, so it is cached by
``(path, blob id)``. A pass reads and validates only new or changed blobs (the git reader skips
the data of known ones) and re-runs just the cheap repository-wide checks over cached claims.

What is cached is small on purpose: canonical JSON text, not pydantic models or YAML position
maps, so a daemon following thousands of workflows stays lean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from agentflowd.manifest import (
    Diagnostic,
    ImageLookup,
    Limits,
    ResolvedImage,
    SourceFile,
    canonical_json,
    combined_hash,
    spec_hash,
)
from agentflowd.manifest.checks import RepoFacts, check_facts, repo_facts, resolve_images
from agentflowd.manifest.diagnostics import Severity
from agentflowd.manifest.load import gc_paused, load_file
from agentflowd.reconcile.plan import Desired

__all__ = ["Intake", "IntakeResult"]

#: Entries kept for previews of other refs, beyond the followed branch's files.
MAX_ENTRIES = 20_000


_VersionKey = tuple[int, tuple[ResolvedImage, ...]]


@dataclass(frozen=True, kw_only=True)
class _FileResult:
    """What one file yields, independent of every other file."""

    desired: tuple[Desired | None, ...]  # per document: None when it has no name
    facts: tuple[RepoFacts, ...]  # per document
    errors: tuple[Diagnostic, ...]  # file-level and per-document errors
    broken: bool  # the file could not be read to its end


@dataclass(kw_only=True)
class IntakeResult:
    """The planner's input for one revision, and every error found."""

    files: list[str]
    desired: list[Desired]
    broken_files: frozenset[str]
    errors: list[Diagnostic] = field(default_factory=list)
    loaded: int = 0  # files read and validated in this pass (the rest came from the cache)

    @property
    def valid(self) -> bool:
        """True when no file or manifest has an error."""
        return not self.errors


class Intake:
    """Loads revisions, reusing what it derived from unchanged files."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._cache: dict[tuple[str, str], _FileResult] = {}
        # a cached document with the images it resolved to -> it with its version hash: that
        # hash (JSON of the image digests, SHA-256) cost ~20 ms a pass for 1,000 workflows
        self._versions: dict[_VersionKey, tuple[Desired, Desired]] = {}

    def known(self) -> frozenset[tuple[str, str]]:
        """(path, blob id) pairs whose results are cached (the reader may skip their data).

        By pair, not blob: a renamed or copied file has a known blob at a new path, and what
        a file yields depends on its path (diagnostics name it).
        """
        return frozenset(self._cache)

    def load(
        self,
        sources: Sequence[SourceFile],
        *,
        keep_only_these: bool = True,
        images: ImageLookup | None = None,
    ) -> IntakeResult:
        """The planner's input for ``sources`` (one revision's files).

        ``keep_only_these`` drops cached files that are not in this revision (the followed
        branch); previews of other refs pass False. ``images`` is the revision's image lookup:
        every agent image must exist in it, and its content becomes part of the version hash.
        """
        with gc_paused():
            return self._load(sources, keep_only_these, images)

    def _load(
        self, sources: Sequence[SourceFile], keep_only_these: bool, images: ImageLookup | None
    ) -> IntakeResult:
        results: list[tuple[str, _FileResult]] = []
        loaded = 0
        for source in sources:
            cache_key = (source.path, source.key) if source.key else None
            cached = self._cache.get(cache_key) if cache_key else None
            if cached is None:
                if source.code == "unchanged":
                    raise RuntimeError(f"{source.path} was skipped as cached but is not cached")
                cached = self._derive(source)
                loaded += 1
                if cache_key is not None:
                    self._cache[cache_key] = cached
            results.append((source.path, cached))
        if keep_only_these:
            wanted = {(s.path, s.key) for s in sources if s.key}
            self._cache = {k: v for k, v in self._cache.items() if k in wanted}
        elif len(self._cache) > MAX_ENTRIES:
            self._cache.clear()
        return self._combine(results, loaded, images, keep_only_these)

    def _derive(self, source: SourceFile) -> _FileResult:
        loaded, file_level = load_file(source, self.limits)
        desired: list[Desired | None] = []
        facts: list[RepoFacts] = []
        errors: list[Diagnostic] = [d for d in file_level if d.severity is Severity.ERROR]
        for manifest, located in loaded:
            facts.append(repo_facts(located))
            own = [d for d in manifest.diagnostics if d.severity is Severity.ERROR]
            errors.extend(own)
            if manifest.name is None:
                desired.append(None)
            elif manifest.valid and manifest.workflow is not None:
                desired.append(
                    Desired(
                        name=manifest.name,
                        file=manifest.file,
                        line=manifest.line,
                        spec_json=canonical_json(manifest.workflow),
                        spec_hash=spec_hash(manifest.workflow),
                    )
                )
            else:
                desired.append(
                    Desired(
                        name=manifest.name,
                        file=manifest.file,
                        line=manifest.line,
                        diagnostics=tuple(d.to_dict() for d in own + file_level),
                    )
                )
        broken = bool(file_level) or any(not m.file_ok for m, _ in loaded)
        return _FileResult(
            desired=tuple(desired), facts=tuple(facts), errors=tuple(errors), broken=broken
        )

    def _combine(
        self,
        results: list[tuple[str, _FileResult]],
        loaded: int,
        images: ImageLookup | None,
        keep_only_these: bool,
    ) -> IntakeResult:
        facts: list[RepoFacts] = []
        slots: list[Desired | None] = []
        errors: list[Diagnostic] = []
        broken: set[str] = set()
        for path, result in results:
            facts.extend(result.facts)
            slots.extend(result.desired)
            errors.extend(result.errors)
            if result.broken:
                broken.add(path)
        problems = check_facts(facts)
        if images is not None:
            missing, resolved = resolve_images(facts, images)
            problems += missing
            versions: dict[_VersionKey, tuple[Desired, Desired]] = {}
            for index, found in enumerate(resolved):
                entry = slots[index]
                if found and entry is not None and entry.spec_hash is not None:
                    # (the entry is kept in the value: its id is not reused while cached)
                    key = (id(entry), found)
                    known = self._versions.get(key)
                    if known is None:
                        versioned = replace(
                            entry, images=found, spec_hash=combined_hash(entry.spec_hash, found)
                        )
                        known = (entry, versioned)
                    versions[key] = known
                    slots[index] = known[1]
            if keep_only_these:
                self._versions = versions
            elif len(self._versions) + len(versions) <= MAX_ENTRIES:
                self._versions.update(versions)
        for index, diag in problems:
            errors.append(diag)
            entry = slots[index]
            if entry is not None:  # a repository-wide problem makes the document invalid
                slots[index] = replace(
                    entry, spec_json=None, diagnostics=(*entry.diagnostics, diag.to_dict())
                )
        return IntakeResult(
            files=[path for path, _ in results],
            desired=[d for d in slots if d is not None],
            broken_files=frozenset(broken),
            errors=sorted(errors),
            loaded=loaded,
        )
