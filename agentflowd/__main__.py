"""``agentflowd``: the daemon's command.

The reconciler (``agentflowd serve``) lands with the GitOps issue. Today the command offers
``agentflowd check DIR``: load a directory of manifests exactly as the daemon will, and print
what it would run (each workflow's agents in stages, triggers and next fire times, hash).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["entry", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run ``agentflowd`` with ``argv``; returns the exit code."""
    from agentflowd._version import __version__
    from agentflowd.cli.validate import run_validate
    from agentflowd.errors import UsageError

    parser = argparse.ArgumentParser(
        prog="agentflowd", description="The AgentFlow GitOps reconciler daemon."
    )
    parser.add_argument("--version", action="version", version=f"agentflowd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="load a manifest directory as the daemon will")
    check.add_argument("path", type=Path, help="directory (or file) of workflow manifests")
    args = parser.parse_args(argv)
    try:
        text, code = run_validate([args.path], verbose=True)
    except UsageError as exc:
        print(f"agentflowd check: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    sys.stdout.write(text)
    return code


def entry() -> None:
    """Console-script entry point (``agentflowd``)."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
