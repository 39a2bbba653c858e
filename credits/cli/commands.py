"""The ``credits`` command: every command module, registered on one Typer app.

Why a registry module: each group of commands lives in its own small module
and registers itself on :data:`credits.cli.app.app` when imported; a command
group with subcommands is one ``add_typer`` line below. Adding a group is
one import and, for a sub-app, one line.
"""

from __future__ import annotations

from credits.cli import export, keys, ops, plans, serve, up, views, webhooks
from credits.cli.app import app

COMMAND_MODULES = (up, views, ops, export, serve, plans)  # each registers its commands on import

app.add_typer(keys.app, name="keys")
app.add_typer(webhooks.app)
for group in (plans.allowance_app, plans.limit_app, plans.alert_app, plans.topup_app):
    app.add_typer(group)

__all__ = ["COMMAND_MODULES", "app"]
