"""response-generator: draft a reply for a classified ticket (image agents/responder:v1.0)."""

from __future__ import annotations

from agentflow import files, llm, log


def run(input):
    classified = input["steps"]["ticket-classifier"]
    log("drafting a", classified["label"], "reply")
    answer = llm.complete(
        prompt=(
            f"Write a short, friendly reply to this {classified['label']} ticket:\n\n"
            + classified["ticket"]
        ),
        max_tokens=400,
    )
    files.write("draft.txt", answer["text"])
    return {"label": classified["label"], "reply": answer["text"].strip()}
