"""heavy-processor: search the literature for each planned query (image agents/processor:v2.1).

Fetches arXiv's Atom API for each query (allowlisted in the workflow) and keeps the titles.
"""

from __future__ import annotations

import re
from urllib.parse import quote_plus

from agentflow import HostError, files, http, log


def run(input):
    queries = input["steps"]["query-planner"]["plan"]
    papers = []
    for query in queries:
        url = (
            f"https://export.arxiv.org/api/query?max_results=5&search_query=all:{quote_plus(query)}"
        )
        try:
            reply = http.fetch(url)
        except HostError as exc:
            log("query failed:", query, "-", exc, level="warn")
            continue
        titles = re.findall(r"<title>(.*?)</title>", reply["body"], re.S)[1:]
        papers.extend({"query": query, "title": " ".join(t.split())} for t in titles)
    files.write("papers.txt", "\n".join(p["title"] for p in papers))
    log("found", len(papers), "papers for", len(queries), "queries")
    return {"queries": queries, "papers": papers}
