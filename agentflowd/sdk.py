"""The Python SDK: define workflows in code, deploy them, run them, follow them.

    from agentflowd import AgentFlowClient, Workflow, Agent, LLMConfig

    client = AgentFlowClient("http://127.0.0.1:8080")
    workflow = Workflow(
        name="data-analysis-pipeline",
        agents=[
            Agent(name="data-collector", image="agents/collector:v1.0",
                  llm=LLMConfig(provider="openai", model="gpt-4"),
                  resources={"memory": "512Mi", "cpu": "100m"}),
            Agent(name="data-analyzer", image="agents/analyzer:v1.0",
                  llm=LLMConfig(provider="anthropic", model="claude-3-sonnet"),
                  depends_on=["data-collector"]),
        ],
    )
    execution = client.deploy_workflow(workflow)          # applies it, then starts a run
    status = client.get_execution_status(execution.id)
    logs = client.get_agent_logs(execution.id, "data-collector")
    for event in client.stream_execution_events(execution.id):
        print(f"Agent {event.agent}: {event.status}")

These build the same manifest a YAML file holds (``Workflow.to_manifest()``); the daemon
validates it as it validates files from git.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Agent", "Execution", "ExecutionEvent", "LLMConfig", "Workflow"]


@dataclass
class LLMConfig:
    """The model an agent asks for."""

    provider: str
    model: str
    temperature: float | None = None
    max_tokens: int | None = None

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"provider": self.provider, "model": self.model}
        if self.temperature is not None:
            out["temperature"] = self.temperature
        if self.max_tokens is not None:
            out["maxTokens"] = self.max_tokens
        return out


@dataclass
class Agent:
    """One step of a workflow."""

    name: str
    image: str
    llm: LLMConfig | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    network_allow: list[str] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "image": self.image}
        if self.llm is not None:
            out["llm"] = self.llm.to_manifest()
        if self.resources:
            out["resources"] = dict(self.resources)
        if self.limits:
            out["limits"] = dict(self.limits)
        if self.network_allow:
            out["network"] = {"allow": list(self.network_allow)}
        if self.depends_on:
            out["dependsOn"] = list(self.depends_on)
        return out


@dataclass
class Workflow:
    """A workflow defined in code."""

    name: str
    agents: list[Agent]
    triggers: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def to_manifest(self) -> dict[str, Any]:
        """The ``kind: Workflow`` manifest, as YAML would hold it."""
        metadata: dict[str, Any] = {"name": self.name}
        if self.labels:
            metadata["labels"] = dict(self.labels)
        spec: dict[str, Any] = {"agents": [a.to_manifest() for a in self.agents]}
        if self.triggers:
            spec["triggers"] = list(self.triggers)
        if self.config:
            spec["config"] = dict(self.config)
        return {
            "apiVersion": "agentflow.io/v1",
            "kind": "Workflow",
            "metadata": metadata,
            "spec": spec,
        }


@dataclass(frozen=True)
class Execution:
    """An execution as the API reports it."""

    id: str
    workflow: str
    state: str
    output: Any = None
    error: str | None = None
    steps: tuple[dict[str, Any], ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Execution:
        return cls(
            id=data["id"],
            workflow=data["workflow"],
            state=data["state"],
            output=data.get("output"),
            error=data.get("error"),
            steps=tuple(data.get("steps") or ()),
            raw=data,
        )


@dataclass(frozen=True)
class ExecutionEvent:
    """One event of an execution's history: ``agent`` is the step (None for the execution),
    ``status`` the last part of its type (``started``, ``succeeded``, ``running``...)."""

    seq: int
    at: str
    type: str
    agent: str | None
    attempt: int | None
    data: Any

    @property
    def status(self) -> str:
        return self.type.split(".", 1)[-1]

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> ExecutionEvent:
        return cls(
            seq=data["seq"],
            at=data["at"],
            type=data["type"],
            agent=data.get("step"),
            attempt=data.get("attempt"),
            data=data.get("data"),
        )
