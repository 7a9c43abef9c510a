"""content-writer: write a draft from the planner's outline (image agents/writer:v1.0)."""

from __future__ import annotations

from agentflow import files, llm


def run(input):
    plan = input["steps"]["content-planner"]
    answer = llm.complete(
        prompt=f"Write a short article on {plan['topic']} covering:\n- "
        + "\n- ".join(plan["plan"]),
        max_tokens=1500,
    )
    files.write("draft.md", answer["text"])
    return {"topic": plan["topic"], "draft": answer["text"]}
