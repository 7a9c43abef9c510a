"""``agentflowd keys``: API keys made, listed and revoked on the daemon's host, against its
database directly (no API, so no key is needed to make the first one).

``keys create NAME --role ROLE [--workflows SELECTOR] [--expires 90d]`` prints the token once;
``keys list``; ``keys revoke NAME``; ``keys token [--file F]`` writes a new token for a
``bootstrap_key_file``. Each change leaves an audit row whose actor is ``local:<OS user>``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentflowd.auth import keys
from agentflowd.store.access import AuditEntry

__all__ = ["add_parser", "run_keys"]


def add_parser(sub: Any) -> None:
    """Add ``keys`` to ``agentflowd``'s sub-commands."""
    parser = sub.add_parser("keys", help="make, list and revoke API keys (on the daemon's host)")
    verbs = parser.add_subparsers(dest="verb", required=True)
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--database", help="SQLite path or postgresql:// URL (as serve)")
    where.add_argument("--state-dir", type=Path, help="state directory (as serve)")
    where.add_argument("--config", type=Path, help="the daemon's YAML config file")
    create = verbs.add_parser("create", parents=[where], help="make a key; prints it once")
    create.add_argument("name")
    create.add_argument(
        "--role", required=True, choices=["viewer", "operator", "deployer", "admin"]
    )
    create.add_argument("--workflows", help="a label selector limiting it, e.g. team=support")
    create.add_argument("--expires", help="lifetime, e.g. 90d, 2w, 12h (default: never)")
    create.add_argument("-o", "--output", choices=["text", "json"], default="text")
    listing = verbs.add_parser("list", parents=[where], help="list keys (never their tokens)")
    listing.add_argument("--all", action="store_true", help="revoked keys too")
    listing.add_argument("-o", "--output", choices=["table", "json"], default="table")
    revoke = verbs.add_parser("revoke", parents=[where], help="revoke a key (name or id)")
    revoke.add_argument("name")
    token = verbs.add_parser("token", help="print (or write) a new token for bootstrap_key_file")
    token.add_argument("--file", type=Path, help="write it here (0600) unless the file exists")
    token.add_argument(
        "--cli-config",
        metavar="URL",
        help="also make it the agentflow CLI's key for the daemon at URL (make run does)",
    )


def _database(args: argparse.Namespace) -> str:
    from agentflowd.config import load_config

    flags = {"database": args.database, "state_dir": args.state_dir}
    config = load_config(file=args.config, flags={"repo": "-", **flags})
    if config.database is None:  # SQLite in the state directory, as serve makes it
        config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return config.database_url


def run_keys(args: argparse.Namespace) -> int:
    """Run ``agentflowd keys VERB``; returns the exit code."""
    if args.verb == "token":
        return _token(args.file, args.cli_config)
    from agentflowd.store import open_store

    store = open_store(_database(args))
    try:
        access = store.access
        now = datetime.now(UTC)
        actor = f"local:{getpass.getuser()}"
        if args.verb == "create":
            token, key = keys.issue(
                access,
                name=args.name,
                role=args.role,
                selector=args.workflows,
                expires=args.expires,
                created_by=actor,
                now=now,
            )
            _audit(access, actor, "key.create", key.name, {"role": key.role, "id": key.id})
            if args.output == "json":
                _say(json.dumps({"name": key.name, "id": key.id, "role": key.role, "token": token}))
            else:
                _say(token)
                _say(
                    f"key {key.name!r} ({key.role}) made; this is the only time it is shown",
                    err=True,
                )
        elif args.verb == "list":
            found = access.keys(include_revoked=args.all)
            if args.output == "json":
                _say(json.dumps([keys.key_view(k) for k in found], indent=2))
            else:
                _say(f"{'NAME':24} {'ID':13} {'ROLE':9} {'WORKFLOWS':20} {'EXPIRES':20} USED")
                for k in found:
                    expires = k.expires_at.isoformat()[:19] if k.expires_at else "never"
                    used = k.last_used_at.isoformat()[:19] if k.last_used_at else "-"
                    name = k.name + (" (revoked)" if k.revoked_at else "")
                    scope = k.selector or "*"
                    _say(f"{name:24} {k.id:13} {k.role:9} {scope:20} {expires:20} {used}")
        else:
            revoked = access.revoke_key(args.name, now=now)
            _audit(access, actor, "key.revoke", revoked.name, {"id": revoked.id})
            _say(f"key {revoked.name!r} revoked", err=True)
        return 0
    finally:
        store.close()


def _say(text: str, *, err: bool = False) -> None:
    print(text, file=sys.stderr if err else sys.stdout)


def _audit(access: Any, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
    entry = AuditEntry(
        at=datetime.now(UTC),
        actor=actor,
        action=action,
        target=target,
        result="ok",
        source="cli",
        detail=detail,
    )
    access.append_audit(entry)


def _token(path: Path | None, cli_url: str | None) -> int:
    token = keys.new_token()
    if path is None:
        if cli_url is None:
            _say(token)
            return 0
    elif path.exists():
        token = path.read_text(encoding="utf-8").strip()
    else:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
        _say(f"a new API key token written to {path}", err=True)
    if cli_url is not None:
        from agentflowd.cli.config_cmd import config_path, store_settings

        store_settings({"api.endpoint": cli_url, "api.key": token})
        _say(f"the agentflow CLI uses it for {cli_url} ({config_path()})", err=True)
    return 0
