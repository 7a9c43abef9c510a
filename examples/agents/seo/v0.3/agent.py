"""seo-optimizer: propose a title, description and keywords (image agents/seo:v0.3)."""

from __future__ import annotations

from agentflow import llm


def run(input):
    draft = input["steps"]["content-writer"]
    answer = llm.complete(
        prompt="Give an SEO title on the first line and five keywords on the second, "
        "comma-separated, for this article:\n\n" + draft["draft"][:6000],
        temperature=0,
    )
    lines = [line.strip() for line in answer["text"].splitlines() if line.strip()] or [""]
    keywords = [k.strip() for k in (lines[1] if len(lines) > 1 else "").split(",") if k.strip()]
    return {"title": lines[0][:70], "keywords": keywords[:5]}
