"""An engine on a real store (SQLite or PostgreSQL) with WAT agents, for the engine tests."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from agentflowd.engine import Engine, Journal, StepRunner
from agentflowd.engine.runner import Isolation
from agentflowd.manifest import canonical_dict, load_sources, spec_hash
from agentflowd.manifest.load import SourceFile
from agentflowd.store import AgentImage, HistoryAction, Origin, SqlStore, WorkflowWrite, open_store
from router import Router
from router.providers.mock import MockProvider
from sandbox import SandboxEngine
from sandbox.isolate import ProcessSandbox
from sandbox.python import PythonRuntime


def manifest(name: str, agents: str, *, config: str = "") -> str:
    return f"""apiVersion: agentflow.io/v1
kind: Workflow
metadata:
  name: {name}
spec:
  agents:
{agents}
  config:
    retryPolicy: {{maxAttempts: 1, backoff: fixed, initialDelay: 10ms, maxDelay: 10ms}}
{config}"""


def agent(name: str, image: str, deps: tuple[str, ...] = (), extra: str = "") -> str:
    lines = [f"    - name: {name}", f"      image: {image}"]
    if deps:
        lines.append(f"      dependsOn: [{', '.join(deps)}]")
    if extra:
        lines.append(extra)
    return "\n".join(lines)


@dataclass
class Harness:
    store: SqlStore
    journal: Journal
    engine: Engine

    def install(self, text: str, images: dict[str, tuple[str, bytes]]) -> str:
        """Put a workflow and its images (ref -> (kind, content)) in the store, as applied."""
        report = load_sources([SourceFile(path="w.yaml", data=text.encode())])
        assert report.valid, [d.format() for d in report.diagnostics]
        workflow = report.manifests[0].workflow
        assert workflow is not None
        records = {}
        for ref, (kind, content) in images.items():
            digest = hashlib.sha256(content).hexdigest()
            self.store.put_image(
                AgentImage(sha256=digest, kind=kind, content=content), now=datetime.now(UTC)
            )
            records[ref] = {"path": ref, "kind": kind, "sha256": digest, "size": len(content)}
        self.store.put_workflow(
            WorkflowWrite(
                name=workflow.name,
                origin=Origin.GIT,
                spec=canonical_dict(workflow),
                spec_hash=spec_hash(workflow),
                images=records,
            ),
            action=HistoryAction.CREATE,
            now=datetime.now(UTC),
        )
        return workflow.name


@asynccontextmanager
async def harness(
    url: str,
    *,
    sandbox: SandboxEngine,
    processes: ProcessSandbox,
    python: PythonRuntime,
    workers: int = 4,
    router: Callable[[], Router] | None = None,
    isolation: Isolation = "auto",
    node: str | None = None,
) -> AsyncIterator[Harness]:
    """``node``: the engine runs as that cluster node (its entries fenced by it, as on
    PostgreSQL with several daemons); it joins through a coordinator first."""
    store = open_store(url)
    assert isinstance(store, SqlStore)
    journal = Journal(store.engine)
    mock = Router(
        {
            "mock": MockProvider(),
            "openai": MockProvider("openai"),
            "anthropic": MockProvider("anthropic"),
            "local": MockProvider("local"),
        }
    )
    runner = StepRunner(
        store=store,
        router=router or (lambda: mock),
        sandbox=sandbox,
        processes=processes,
        python=python,
        today=lambda: datetime.now(UTC).date(),
        isolation=isolation,
    )
    if node is not None:
        from agentflowd.cluster import SqlCoordinator

        SqlCoordinator(store.engine, node=node).join()
    engine = Engine(
        store=store,
        log=journal,
        runner=runner,
        workers=workers,
        node=node,
        fence=node is not None,
    )
    await engine.start(resume=node is None)
    try:
        yield Harness(store, journal, engine)
    finally:
        await engine.close()
        journal.close()
        store.close()


def sqlite_url(tmp_path: Path) -> str:
    return str(tmp_path / "engine.db")
