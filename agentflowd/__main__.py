"""``agentflowd``: the daemon's command.

``agentflowd serve`` follows a git repository and applies its workflows; ``agentflowd check DIR``
loads a directory of manifests exactly as the daemon will and prints what it would run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["entry", "main"]


def _parser() -> argparse.ArgumentParser:
    from agentflowd._version import __version__

    parser = argparse.ArgumentParser(
        prog="agentflowd", description="The AgentFlow GitOps reconciler daemon."
    )
    parser.add_argument("--version", action="version", version=f"agentflowd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="follow a git repository and apply its workflows",
        description="Every option can also be set in --config FILE (snake_case keys) or as "
        "AGENTFLOW_<KEY> in the environment; flags win over variables, which win over the file.",
    )
    serve.add_argument("--repo", help="local path or URL of the git repository")
    serve.add_argument("--branch", help="branch to follow (default main)")
    serve.add_argument("--path", help="sub-directory holding the manifests")
    serve.add_argument("--database", help="SQLite path or postgresql:// URL")
    serve.add_argument("--listen", help="HOST:PORT of the API (default 127.0.0.1:8080)")
    serve.add_argument("--state-dir", type=Path, help="state directory (default .agentflow)")
    serve.add_argument("--config", type=Path, help="YAML config file")
    serve.add_argument("--poll-interval", help="how often to poll a remote (default 60s)")
    serve.add_argument("--api-url", help="public base URL of the API, for status links")
    serve.add_argument("--log-format", choices=["auto", "json", "console"])
    serve.add_argument(
        "--bootstrap-key-file", type=Path, help="a file holding the first admin key (afk_...)"
    )
    serve.add_argument(
        "--llm-mock",
        action="store_const",
        const=True,
        help="answer routes of LLM providers without a key with the mock provider",
    )
    serve.add_argument(
        "--no-prune",
        dest="prune",
        action="store_const",
        const=False,
        help="keep workflows removed from git",
    )
    check = sub.add_parser("check", help="load a manifest directory as the daemon will")
    check.add_argument("path", type=Path, help="directory (or file) of workflow manifests")
    check.add_argument(
        "--images-root",
        type=Path,
        help="where agent images (NAME/TAG/agent.py) are found; default: the git work tree's root",
    )
    from agentflowd.cli.keys_local import add_parser

    add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``agentflowd`` with ``argv``; returns the exit code."""
    from agentflowd.errors import UsageError

    args = _parser().parse_args(argv)
    if args.command == "keys":
        from agentflowd.cli.keys_local import run_keys
        from agentflowd.errors import AgentFlowError

        try:
            return run_keys(args)
        except UsageError as exc:
            print(f"agentflowd keys: {exc}", file=sys.stderr)  # noqa: T201
            return 2
        except AgentFlowError as exc:
            print(f"agentflowd keys: {exc}", file=sys.stderr)  # noqa: T201
            return 3 if isinstance(exc, LookupError) else 1
    if args.command == "check":
        from agentflowd.cli.validate import run_validate

        notes: list[str] = []
        try:
            text, code = run_validate(
                [args.path], verbose=True, images_root=args.images_root, notes=notes
            )
        except UsageError as exc:
            print(f"agentflowd check: {exc}", file=sys.stderr)  # noqa: T201
            return 2
        for note in notes:
            print(f"agentflowd check: {note}", file=sys.stderr)  # noqa: T201
        sys.stdout.write(text)
        return code
    # httpx imports its own command-line client when rich and click are installed (they are,
    # for the agentflow CLI): rich's console, progress and syntax modules and pygments' lexers,
    # ~6 MB of a daemon that never uses them. Importing that module fails here instead, and
    # httpx falls back to a stub `main` (the daemon never calls it).
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    from agentflowd.daemon import serve
    from agentflowd.errors import AgentFlowError

    flags = {
        k: v for k, v in vars(args).items() if k not in ("command", "config") and v is not None
    }
    try:
        return serve(config_file=args.config, flags=flags)
    except UsageError as exc:
        print(f"agentflowd: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except AgentFlowError as exc:
        print(f"agentflowd: {exc}", file=sys.stderr)  # noqa: T201
        return 1


def entry() -> None:
    """Console-script entry point (``agentflowd``)."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
