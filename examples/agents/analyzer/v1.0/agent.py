"""data-analyzer: summarise what the collector found (image agents/analyzer:v1.0)."""

from __future__ import annotations

import json

from agentflow import llm


def run(input):
    records = input["steps"]["data-collector"]["records"]
    ok = [r for r in records if "body" in r]
    answer = llm.complete(
        prompt="List three findings in this data, one per line:\n\n" + json.dumps(ok)[:8000],
        temperature=0,
    )
    findings = [line.strip("-• ").strip() for line in answer["text"].splitlines() if line.strip()]
    return {"sources": len(records), "usable": len(ok), "findings": findings[:3]}
