"""summarizer: answer the question from what was found (image agents/summarizer:v1.3)."""

from __future__ import annotations

from agentflow import llm


def run(input):
    found = input["steps"]["heavy-processor"]
    titles = "\n".join(f"- {p['title']}" for p in found["papers"][:30]) or "(nothing found)"
    answer = llm.complete(
        prompt="Summarise what these papers suggest about the research questions "
        + "; ".join(found["queries"])
        + ":\n"
        + titles,
        max_tokens=800,
    )
    return {"summary": answer["text"].strip(), "papers": len(found["papers"])}
