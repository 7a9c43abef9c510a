"""The ``agentflow`` command line: kubectl-like verbs over manifests and (later) the daemon.

Exit codes: 0 ok, 1 failure (e.g. invalid manifests), 2 usage, 3 not found.
"""

from __future__ import annotations

import typer

from agentflowd._version import __version__
from agentflowd.cli import (
    access_cmd,
    agent_cmd,
    config_cmd,
    executions_cmd,
    live_cmd,
    remote,
    route_cmd,
    schema_cmd,
    validate,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="agentflow",
    help="AgentFlow: GitOps for AI agent workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("validate")(validate.validate)
app.command("schema")(schema_cmd.schema)
remote.register(app)
executions_cmd.register(app)
app.add_typer(agent_cmd.agent_app, name="agent")
app.command("build")(agent_cmd.build)
app.add_typer(route_cmd.route_app, name="route")
app.add_typer(config_cmd.config_app, name="config")
app.add_typer(config_cmd.auth_app, name="auth")
app.add_typer(access_cmd.keys_app, name="keys")
app.command("audit")(access_cmd.audit)
app.command("settings")(access_cmd.settings)
app.command("live-view")(live_cmd.live_view)


@app.command("version")
def version() -> None:
    """Print the version of agentflow."""
    typer.echo(f"agentflow {__version__}")


def main() -> None:
    """Console-script entry point."""
    app()
