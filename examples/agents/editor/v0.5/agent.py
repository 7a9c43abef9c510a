"""copy-editor: tighten the draft's language (image agents/editor:v0.5)."""

from __future__ import annotations

from agentflow import llm


def run(input):
    draft = input["steps"]["content-writer"]["draft"]
    answer = llm.complete(
        prompt="Copy-edit this text: fix grammar, keep the meaning and length.\n\n" + draft,
        temperature=0,
    )
    return {"edited": answer["text"], "changed": answer["text"].strip() != draft.strip()}
