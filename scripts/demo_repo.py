"""Create the demo git repository that `make run` serves, and say how to use it.

python scripts/demo_repo.py REPO_DIR EXAMPLES_DIR API_URL

The first run commits the example workflows (at the root) and their agents (``agents/``, the
directory next to EXAMPLES_DIR). A repository made before the agents existed gets them in a
second commit; the user's own changes are never overwritten.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pygit2


def main() -> int:
    repo_dir, examples, api = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    agents = examples.parent / "agents"
    sig = pygit2.Signature("AgentFlow demo", "demo@agentflow.invalid")
    if not (repo_dir / ".git").exists():
        repo_dir.mkdir(parents=True, exist_ok=True)
        repo = pygit2.init_repository(str(repo_dir), initial_head="main")
        for path in sorted(examples.glob("*.yaml")):
            text = path.read_text(encoding="utf-8").replace(
                "$schema=../../schemas/", f"$schema={Path.cwd() / 'schemas'}/"
            )
            (repo_dir / path.name).write_text(text, encoding="utf-8")
        shutil.copytree(agents, repo_dir / "agents", ignore=shutil.ignore_patterns("__pycache__"))
        repo.index.add_all()
        repo.index.write()
        tree = repo.index.write_tree()
        repo.create_commit("HEAD", sig, sig, "The example workflows and agents", tree, [])
        print(f"created the demo repository {repo_dir} from {examples} and {agents}")  # noqa: T201
    elif not (repo_dir / "agents").exists():
        repo = pygit2.Repository(str(repo_dir))
        shutil.copytree(agents, repo_dir / "agents", ignore=shutil.ignore_patterns("__pycache__"))
        repo.index.add_all(["agents"])
        repo.index.write()
        tree = repo.index.write_tree()
        parent = repo.head.target
        repo.create_commit("HEAD", sig, sig, "The example agents", tree, [parent])
        print(f"added the example agents to {repo_dir}")  # noqa: T201
    print(  # noqa: T201
        f"""
agentflowd follows {repo_dir} (branch main). The API is {api}
  curl {api}/api/v1/workflows            # what is applied
  .venv/bin/agentflow list workflows      # the same, as a table
Change a workflow and commit; it is applied at once and the result noted in git:
  cd {repo_dir} && sed -i 's/gpt-4$/gpt-4o/' customer-support.yaml && git commit -qam 'try gpt-4o'
  git -C {repo_dir} log -3 --notes=agentflow
Run a workflow (its agents run in the sandbox; the mock provider answers without API keys):
  .venv/bin/agentflow run customer-support-pipeline --input '{{"ticket": "late"}}' --wait
  curl -X POST {api}/api/v1/tickets -d '{{"ticket": "Refund please"}}'    # its webhook
  .venv/bin/agentflow live-view customer-support-pipeline                  # the latest run, live
Stop with Ctrl-C. State (SQLite, mirrors) is in {repo_dir.parent / "state"}.
"""
    )
    shutil.disk_usage(repo_dir)  # fail early on an unusable path
    return 0


if __name__ == "__main__":
    sys.exit(main())
