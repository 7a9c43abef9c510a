"""Manifest texts shared by the tests."""

from __future__ import annotations

VALID = """\
apiVersion: agentflow.io/v1
kind: Workflow
metadata:
  name: support
  labels:
    team: cs
spec:
  agents:
    - name: classify
      image: agents/classifier:v1.2
      llm:
        provider: openai
        model: gpt-4
        temperature: 0.1
      resources:
        memory: 512Mi
        cpu: 200m
        timeout: 30s
    - name: respond
      image: agents/responder:v1.0
      dependsOn: [classify]
      llm:
        provider: anthropic
        model: claude-3-sonnet
        maxTokens: 1000
    - name: review
      image: agents/qa:v0.8
      dependsOn: [respond]
  triggers:
    - webhook:
        path: /hooks/support
        method: POST
        secretRef: {name: support-hook}
    - schedule: "0 9 * * 1-5"
  config:
    maxConcurrentExecutions: 10
    defaultTimeout: 300s
    retryPolicy: exponential
"""


def named(name: str, *, hook: str | None = None) -> str:
    """The valid manifest under another name (and webhook path)."""
    text = VALID.replace("name: support", f"name: {name}")
    return text.replace("/hooks/support", hook or f"/hooks/{name}")


#: A trivial Python agent, the content of every image the manifests above use.
STUB_AGENT = "def run(input):\n    return {}\n"

#: The images VALID (and named()) use, as repository files: add them to a test repository.
AGENT_FILES = {
    "agents/classifier/v1.2/agent.py": STUB_AGENT,
    "agents/responder/v1.0/agent.py": STUB_AGENT,
    "agents/qa/v0.8/agent.py": STUB_AGENT,
}
