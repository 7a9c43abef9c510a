"""ticket-classifier: label a support ticket (image agents/classifier:v1.2)."""

from __future__ import annotations

from agentflow import llm, log

LABELS = ("billing", "shipping", "technical", "account", "other")


def run(input):
    ticket = input["input"]["ticket"] if "input" in input else input["ticket"]
    log("classifying a ticket of", len(ticket), "characters")
    answer = llm.complete(
        prompt=(
            "Classify this support ticket as one of "
            + ", ".join(LABELS)
            + ". Answer with the label only.\n\nTicket: "
            + ticket
        ),
        temperature=0,
    )
    text = answer["text"].strip().lower()
    label = next((label for label in LABELS if label in text), "other")
    return {"ticket": ticket, "label": label, "model": answer.get("model")}
