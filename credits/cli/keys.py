"""``credits keys create|list|revoke``: the HTTP API's bearer keys.

A key is printed once, when it is made; only its SHA-256 is stored (see
:mod:`credits.http.keys`). Scopes: ``read`` (GETs and /metrics), ``write``
(and every write), ``admin`` (and the admin page).
"""

from __future__ import annotations

from typing import Annotated

import typer

from credits.cli.app import (
    EXIT_INVALID,
    DataDirOption,
    JsonOption,
    console,
    fail,
    open_ledger,
    print_json,
    say,
    when,
)
from credits.http import keys as key_store
from credits.transport import blocking_executor, drive

app = typer.Typer(
    help="API keys of the HTTP API (`credits serve`): create, list, revoke.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command()
def create(
    scope: Annotated[str, typer.Option(help="read, write or admin")] = "read",
    name: Annotated[str, typer.Option(help="What the key is for (shown in lists)")] = "api",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make a key and print it once (it cannot be shown again)."""
    with open_ledger(data_dir) as client:
        made = drive(key_store.create_key(scope, name), blocking_executor(client.redis))
    if as_json:
        print_json({"key": made.token, **made.key.public()})
        return
    say(("key ", "bold"), made.token)
    say("  id ", made.key.id, "   scope ", made.key.scope, "   name ", made.key.name)
    say(("  Keep it now: only its hash is stored.", "yellow"))


@app.command("list")
def list_keys(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """List keys (ids, names, scopes; never the keys)."""
    with open_ledger(data_dir) as client:
        found = drive(key_store.list_keys(), blocking_executor(client.redis))
    if as_json:
        print_json([key.public() for key in found])
        return
    if not found:
        say("No API keys. Make one with: credits keys create --scope read")
    for key in found:
        console.print()
        say((key.id, "bold"), "  ", key.scope, "  ", key.name)
        say("  created ", when(key.created_at))


@app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="From `credits keys list`")],
    data_dir: DataDirOption = None,
) -> None:
    """Delete a key; servers that cached it refuse it within seconds."""
    with open_ledger(data_dir) as client:
        removed = drive(key_store.revoke_key(key_id), blocking_executor(client.redis))
    if not removed:
        raise fail("no key with id ", key_id, code=EXIT_INVALID)
    say("revoked ", key_id)
