"""Semantic checks that a schema cannot express, within one workflow and across a repository.

Within a workflow: agent names are unique, every ``dependsOn`` names an agent of the workflow,
the dependencies form a DAG (a cycle is reported with its path, ``a -> b -> a``), and every
webhook is signed (``secretRef``) or says ``unsigned: true`` — which is then a warning: anyone
who reaches the daemon can start that workflow.
Across a repository: workflow names are unique, no two webhook triggers share a path and
method, and every agent image exists in the revision (:mod:`agentflowd.manifest.images`).

The checks read the raw YAML data, not the validated model, so they still run when another
field of the same manifest is invalid: a user sees every problem of a file in one pass. They
skip values of the wrong type, which the schema validation already reports.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agentflowd.manifest.diagnostics import Diagnostic, Severity, format_path
from agentflowd.manifest.images import ImageLookup, ResolvedImage
from agentflowd.manifest.yamlread import Document, Path

__all__ = [
    "Claim",
    "Located",
    "RepoFacts",
    "check_facts",
    "check_repository",
    "check_workflow",
    "find_cycles",
    "repo_facts",
    "resolve_images",
]


@dataclass(frozen=True, kw_only=True, eq=False)
class Located:
    """A document of a file, as the checks see it."""

    file: str
    document: Document


def _diag(
    loc: Located,
    path: Path,
    message: str,
    code: str,
    *,
    key: bool = False,
    severity: Severity = Severity.ERROR,
) -> Diagnostic:
    mark = loc.document.mark_for(path, key=key)
    return Diagnostic(
        file=loc.file,
        line=mark.line,
        col=mark.col,
        path=format_path(path),
        message=message,
        code=code,
        severity=severity,
    )


def _agents(data: Any) -> list[tuple[int, dict[str, Any]]]:
    spec = data.get("spec") if isinstance(data, dict) else None
    agents = spec.get("agents") if isinstance(spec, dict) else None
    if not isinstance(agents, list):
        return []
    return [(i, a) for i, a in enumerate(agents) if isinstance(a, dict)]


#: Paths the daemon's own API answers: a webhook trigger there would never fire.
RESERVED_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        "/docs",
        "/redoc",
        "/openapi.json",
        "/api/v1/sync",
        "/api/v1/diff",
        "/api/v1/costs",
        "/api/v1/git/webhook",
        "/api/v1/workflows",
        "/api/v1/executions",
        "/api/v1/revisions",
    }
)
RESERVED_PREFIXES = ("/api/v1/workflows/", "/api/v1/executions/", "/api/v1/revisions/", "/docs/")


def check_workflow(loc: Located) -> list[Diagnostic]:
    """Agent names unique, dependsOn targets exist, no dependency cycles, webhook paths free."""
    out: list[Diagnostic] = []
    for where, route, _method in _webhooks(loc):
        if route in RESERVED_PATHS or route.startswith(RESERVED_PREFIXES):
            out.append(
                _diag(
                    loc,
                    where,
                    f"webhook path {route} is the daemon's own API; choose another path",
                    "reserved-webhook-path",
                )
            )
    out += _check_signing(loc)
    agents = _agents(loc.document.data)
    first_index: dict[str, int] = {}
    for i, agent in agents:
        name = agent.get("name")
        if not isinstance(name, str):
            continue
        if name in first_index:
            j = first_index[name]
            line = loc.document.mark_for(("spec", "agents", j, "name")).line
            out.append(
                _diag(
                    loc,
                    ("spec", "agents", i, "name"),
                    f"duplicate agent name {name!r} (also spec.agents[{j}], line {line})",
                    "duplicate-agent",
                )
            )
        else:
            first_index[name] = i

    graph: dict[str, list[str]] = {name: [] for name in first_index}
    edge_path: dict[tuple[str, str], Path] = {}
    for i, agent in agents:
        name, deps = agent.get("name"), agent.get("dependsOn")
        if not isinstance(deps, list):
            continue
        for k, dep in enumerate(deps):
            if not isinstance(dep, str):
                continue
            path: Path = ("spec", "agents", i, "dependsOn", k)
            if dep not in first_index:
                close = difflib.get_close_matches(dep, list(first_index), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                known = ", ".join(sorted(first_index)) or "none"
                out.append(
                    _diag(
                        loc,
                        path,
                        f"unknown agent {dep!r}{hint} (agents: {known})",
                        "unknown-dependency",
                    )
                )
            elif isinstance(name, str) and first_index.get(name) == i:
                graph[name].append(dep)
                edge_path.setdefault((name, dep), path)

    for cycle in find_cycles(graph):
        # Report at the dependsOn entry that closes the cycle: cycle[-2] depends on cycle[-1].
        path = edge_path[(cycle[-2], cycle[-1])]
        out.append(_diag(loc, path, f"dependency cycle: {' -> '.join(cycle)}", "dependency-cycle"))
    return out


def _check_signing(loc: Located) -> list[Diagnostic]:
    """Each webhook is signed or says ``unsigned: true`` (a warning); not both, not neither."""
    out: list[Diagnostic] = []
    data = loc.document.data
    spec = data.get("spec") if isinstance(data, dict) else None
    triggers = spec.get("triggers") if isinstance(spec, dict) else None
    for i, trig in enumerate(triggers if isinstance(triggers, list) else []):
        hook = trig.get("webhook") if isinstance(trig, dict) else None
        if not isinstance(hook, dict):
            continue
        unsigned = hook.get("unsigned")
        if unsigned is not None and not isinstance(unsigned, bool):
            continue  # the schema reports the type
        where: Path = ("spec", "triggers", i, "webhook", "unsigned")
        route = f"{hook.get('method', 'POST')} {hook.get('path', '?')}"
        if hook.get("secretRef") is not None:
            if unsigned:
                message = "a webhook with secretRef is signed: remove unsigned: true"
                out.append(_diag(loc, where, message, "webhook-signing-conflict"))
        elif not unsigned:
            message = (
                f"webhook {route} has no secretRef: name the secret that signs its calls "
                "(secretRef: {name: ...}), or write unsigned: true to let anyone who reaches "
                "the daemon start this workflow"
            )
            out.append(_diag(loc, where, message, "unsigned-webhook-undeclared"))
        else:
            message = (
                f"webhook {route} accepts unsigned calls: anyone who reaches the daemon can "
                "start this workflow"
            )
            out.append(_diag(loc, where, message, "unsigned-webhook", severity=Severity.WARNING))
    return out


def find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Every elementary cycle found by a depth-first walk, each once, as ``[a, b, ..., a]``.

    A node's dependencies are visited in the order written, so the reported path follows the
    manifest. Iterative, so a 500-agent chain cannot exhaust the stack.
    """
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph, white)
    seen: set[frozenset[tuple[str, str]]] = set()
    cycles: list[list[str]] = []
    for root in graph:
        if color[root] != white:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        on_path: list[str] = [root]
        color[root] = grey
        while stack:
            node, idx = stack[-1]
            deps = graph[node]
            if idx >= len(deps):
                stack.pop()
                on_path.pop()
                color[node] = black
                continue
            stack[-1] = (node, idx + 1)
            dep = deps[idx]
            if color.get(dep) == grey:
                cycle = [*on_path[on_path.index(dep) :], dep]
                key = frozenset(zip(cycle, cycle[1:], strict=False))
                if key not in seen:
                    seen.add(key)
                    cycles.append(cycle)
            elif color.get(dep) == white:
                color[dep] = grey
                stack.append((dep, 0))
                on_path.append(dep)
    return cycles


def _name(loc: Located) -> str | None:
    data = loc.document.data
    meta = data.get("metadata") if isinstance(data, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else None


def _webhooks(loc: Located) -> list[tuple[Path, str, str]]:
    data = loc.document.data
    spec = data.get("spec") if isinstance(data, dict) else None
    triggers = spec.get("triggers") if isinstance(spec, dict) else None
    out: list[tuple[Path, str, str]] = []
    if not isinstance(triggers, list):
        return out
    for i, trig in enumerate(triggers):
        hook = trig.get("webhook") if isinstance(trig, dict) else None
        if not isinstance(hook, dict) or not isinstance(hook.get("path"), str):
            continue
        method = hook.get("method", "POST")
        if isinstance(method, str):
            out.append((("spec", "triggers", i, "webhook", "path"), hook["path"], method.upper()))
    return out


@dataclass(frozen=True, kw_only=True)
class Claim:
    """Something one document claims across the repository (a name, a webhook route)."""

    key: tuple[str, ...]
    path: Path
    line: int
    col: int


@dataclass(frozen=True, kw_only=True)
class RepoFacts:
    """What the repository-wide checks need of one document: small enough to cache."""

    file: str
    names: tuple[Claim, ...]
    webhooks: tuple[Claim, ...]
    images: tuple[Claim, ...] = ()  # key: (image reference,)


def repo_facts(loc: Located) -> RepoFacts:
    """The claims of one document."""

    def claim(key: tuple[str, ...], path: Path) -> Claim:
        mark = loc.document.mark_for(path)
        return Claim(key=key, path=path, line=mark.line, col=mark.col)

    name = _name(loc)
    names = (claim((name,), ("metadata", "name")),) if name is not None else ()
    hooks = tuple(claim((method, route), path) for path, route, method in _webhooks(loc))
    images = tuple(
        claim((agent["image"],), ("spec", "agents", i, "image"))
        for i, agent in _agents(loc.document.data)
        if isinstance(agent.get("image"), str)
    )
    return RepoFacts(file=loc.file, names=names, webhooks=hooks, images=images)


def _collisions(
    facts: Sequence[RepoFacts],
    pick: Callable[[RepoFacts], tuple[Claim, ...]],
    message: Callable[[tuple[str, ...], str], str],
    code: str,
) -> list[tuple[int, Diagnostic]]:
    """Report every claim another document also makes, naming where the others are.

    Both sides are invalid: applying either one would depend on file order.
    """
    groups: dict[tuple[str, ...], list[tuple[int, Claim]]] = {}
    for index, fact in enumerate(facts):
        for item in pick(fact):
            groups.setdefault(item.key, []).append((index, item))
    out: list[tuple[int, Diagnostic]] = []
    for key, members in groups.items():
        if len(members) < 2:
            continue
        for index, item in members:
            others = ", ".join(
                f"{facts[i].file}:{c.line}" for i, c in members if i != index or c != item
            )
            diag = Diagnostic(
                file=facts[index].file,
                line=item.line,
                col=item.col,
                path=format_path(item.path),
                message=message(key, others),
                code=code,
            )
            out.append((index, diag))
    return out


def check_facts(facts: Sequence[RepoFacts]) -> list[tuple[int, Diagnostic]]:
    """Workflow names unique across the repo; webhook (method, path) pairs unique.

    Each diagnostic comes with the index of the document (in ``facts``) it belongs to.
    """
    out = _collisions(
        facts,
        lambda f: f.names,
        lambda key, others: f"workflow {key[0]!r} is also defined at {others}",
        "duplicate-workflow",
    )
    out += _collisions(
        facts,
        lambda f: f.webhooks,
        lambda key, others: f"webhook {key[0]} {key[1]} is also used at {others}",
        "duplicate-webhook",
    )
    return out


def resolve_images(
    facts: Sequence[RepoFacts], lookup: ImageLookup
) -> tuple[list[tuple[int, Diagnostic]], list[tuple[ResolvedImage, ...]]]:
    """Find every image the documents use: an error per missing one, the found ones per document.

    Each reference is looked up once, however many workflows use it.
    """
    found: dict[str, ResolvedImage | str] = {}
    errors: list[tuple[int, Diagnostic]] = []
    resolved: list[tuple[ResolvedImage, ...]] = []
    for index, fact in enumerate(facts):
        mine: dict[str, ResolvedImage] = {}
        for item in fact.images:
            ref = item.key[0]
            if ref not in found:
                found[ref] = lookup.resolve(ref)
            result = found[ref]
            if isinstance(result, str):
                diag = Diagnostic(
                    file=fact.file,
                    line=item.line,
                    col=item.col,
                    path=format_path(item.path),
                    message=result,
                    code="image-not-found",
                )
                errors.append((index, diag))
            else:
                mine[ref] = result
        resolved.append(tuple(mine[k] for k in sorted(mine)))
    return errors, resolved


def check_repository(docs: Sequence[Located]) -> list[tuple[Located, Diagnostic]]:
    """:func:`check_facts` over documents; each diagnostic comes with its document."""
    return [(docs[i], diag) for i, diag in check_facts([repo_facts(d) for d in docs])]
