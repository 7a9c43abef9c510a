"""data-collector: fetch the sources named in the input (image agents/collector:v1.0).

Input: {"sources": ["https://api.github.com/repos/OWNER/NAME", ...]}. Each URL must be allowed
by the agent's network.allow; a refused or failed fetch is recorded, not fatal.
"""

from __future__ import annotations

from agentflow import HostError, http, log


def run(input):
    sources = input.get("input", {}).get("sources", [])
    collected = []
    for url in sources:
        try:
            reply = http.fetch(url)
        except HostError as exc:
            log("skipping", url, "-", exc, level="warn")
            collected.append({"url": url, "error": str(exc)})
            continue
        collected.append({"url": url, "status": reply["status"], "body": reply["body"][:4000]})
    log("collected", len(collected), "sources")
    return {"records": collected}
