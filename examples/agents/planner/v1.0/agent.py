"""Planner: break a topic or question into steps (image agents/planner:v1.0).

Used by content-generation (an outline) and research-assistant (search queries).
"""

from __future__ import annotations

from agentflow import llm


def run(input):
    data = input.get("input", {})
    topic = data.get("topic") or data.get("question") or "the request"
    answer = llm.complete(
        prompt=f"Plan the work on: {topic}. Give 3 to 5 short points, one per line.",
        temperature=0,
    )
    points = [line.strip("-•0123456789. ").strip() for line in answer["text"].splitlines()]
    return {"topic": topic, "plan": [p for p in points if p][:5]}
