"""Operator commands that change the ledger: ``grant``, ``release``, ``verify``, ``reconcile``.

Why here and not in Python snippets: an operator at 3 a.m. should be able to
give a user credits, free a stuck hold or rebuild one account without writing
code, and every such change should land in the user's log like any other
(with who did it, from where, and why, in its metadata).
"""

from __future__ import annotations

import getpass
import uuid
from typing import Annotated, Any, Final

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from credits import limits
from credits.cli.app import (
    EXIT_INVALID,
    DataDirOption,
    JsonOption,
    app,
    console,
    open_ledger,
    print_json,
    say,
    warn,
)
from credits.errors import StoreUnavailableError
from credits.models import BalanceVerification

GRANT_ACTION_DEFAULT: Final = "grant"
CLI_SOURCE: Final = "credits-cli"


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        return "unknown"


@app.command()
def grant(
    user: str,
    amount: Annotated[int, typer.Argument(min=1, max=limits.AMOUNT_MAX, help="Whole credits")],
    reason: Annotated[
        str | None, typer.Option(help="Why (kept in the transaction's metadata)")
    ] = None,
    action: Annotated[str, typer.Option(help="The transaction's action")] = GRANT_ACTION_DEFAULT,
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="Repeat a grant safely: the same key grants once [default: a new one]"),
    ] = None,
    expires_in: Annotated[
        int | None,
        typer.Option(
            min=1, max=limits.LOT_TERM_MS_MAX // 1000, help="Seconds until the lot expires"
        ),
    ] = None,
    category: Annotated[str, typer.Option(help="paid, promotional or refund")] = "paid",
    priority: Annotated[
        int,
        typer.Option(
            min=limits.LOT_PRIORITY_MIN, max=limits.LOT_PRIORITY_MAX, help="Lower is drawn first"
        ),
    ] = limits.LOT_PRIORITY_DEFAULT,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give a user credits: a new lot (an `add` in their log, with who granted it and why).

    Prints the idempotency key used: if the store was unreachable (exit 3, the
    outcome unknown), run the same command again with --idempotency-key KEY and
    it grants once at most.
    """
    key = idempotency_key or f"cli-grant-{uuid.uuid4().hex}"
    metadata: dict[str, Any] = {"source": CLI_SOURCE, "operator": _operator()}
    if reason is not None:
        metadata["reason"] = reason
    with open_ledger(data_dir) as client:
        try:
            result = client.add(
                user,
                amount,
                action,
                metadata,
                idempotency_key=key,
                expires_in=expires_in,
                category=category,
                priority=priority,
            )
        except StoreUnavailableError:
            warn("The outcome is unknown. Repeat with: --idempotency-key ", key)
            raise
    if as_json:
        print_json({"user_id": user, "idempotency_key": key, **result.model_dump()})
        return
    say("granted ", (str(amount), "bold"), " to ", user, ": balance ", str(result.balance))
    say("  tx ", result.tx_id, "   lot ", result.lot_id or "", "   idempotency key ", key)


@app.command()
def release(
    reservation_id: Annotated[str, typer.Argument(metavar="ID", help="The reservation id")],
    reason: Annotated[str | None, typer.Option(help="Why (kept on the release)")] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Release a hold: charge nothing and give all of it back (safe to repeat)."""
    with open_ledger(data_dir) as client:
        settlement = client.release(reservation_id, reason)
    if as_json:
        print_json(settlement.model_dump())
        return
    say("released ", reservation_id)
    say(
        "  ", (str(settlement.released), "bold"), " credits back; balance ",
        str(settlement.balance), "   tx ", settlement.tx_id,
    )  # fmt: skip


def _print_verification(user: str, found: BalanceVerification) -> None:
    if found.valid:
        say(
            user, ": ", ("valid", "green"), f" (balance {found.cached}, held {found.held_cached}; "
            f"{found.events} events, {found.events_read} read"
            + (", from the first" if found.full else f", after checkpoint {found.checkpoint}")
            + ")",
        )  # fmt: skip
        return
    say(user, ": ", ("INVALID", "red"))
    say(
        "  balance cached ", str(found.cached), " → calculated ", str(found.calculated),
        f" (difference {found.difference:+d})",
    )  # fmt: skip
    say("  held cached ", str(found.held_cached), " → calculated ", str(found.held_calculated))
    for problem in found.problems:
        say("  - ", problem)


@app.command()
def verify(
    user: str,
    fix: Annotated[bool, typer.Option("--fix", help="Rebuild the cached account from the log")] = (
        False
    ),
    full: Annotated[
        bool,
        typer.Option("--full", help="Replay from the first event (archived too), not a checkpoint"),
    ] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check one user's cached balance against the log (cached → calculated); --fix rebuilds it.

    Incremental: from the user's last verified checkpoint; --full replays the
    whole log, archived events included, and checks every checkpoint too.
    Exits 1 if the account differs and was not fixed.
    """
    with open_ledger(data_dir) as client:
        found = client.verify_balance(user, full=full)
        after = None
        if fix and not found.valid:
            client.rebuild_balance(user)
            after = client.verify_balance(user, full=full)
    if as_json:
        print_json(
            {
                "user_id": user,
                "verification": found.model_dump(),
                "fixed": after is not None and after.valid,
                "after": None if after is None else after.model_dump(),
            }
        )
    else:
        _print_verification(user, found)
        if after is not None:
            say(("rebuilt", "bold"), " from the log:")
            _print_verification(user, after)
    if not found.valid and (after is None or not after.valid):
        raise typer.Exit(EXIT_INVALID)


@app.command()
def reconcile(
    fix: Annotated[bool, typer.Option("--fix", help="Rebuild balances that differ")] = False,
    full: Annotated[
        bool,
        typer.Option("--full", help="Replay every whole log (archived too), not from checkpoints"),
    ] = False,
    batch_size: Annotated[
        int,
        typer.Option(min=1, max=limits.RECONCILE_BATCH_USERS_MAX, help="Users read per batch"),
    ] = limits.RECONCILE_BATCH_USERS_DEFAULT,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Verify every user's cached balance against its log (the same work as the beat task).

    Incremental (what was written since each user's last verified checkpoint)
    unless --full. Shows each account that differed as cached → calculated. Exits 1 if a
    balance differs and was not fixed.
    """
    with open_ledger(data_dir) as client:
        if as_json:
            report = client.reconcile(fix=fix, batch_size=batch_size, full=full)
        else:
            with Progress(
                TextColumn("reconcile"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            ) as progress:
                task = progress.add_task("users", total=None)

                def advance(checked: int, total: int) -> None:
                    progress.update(task, completed=checked, total=total)

                report = client.reconcile(
                    fix=fix, batch_size=batch_size, progress=advance, full=full
                )
                progress.update(task, completed=report.checked, total=max(report.checked, 1))
    if as_json:
        print_json(report.model_dump())
    else:
        say(
            "checked ", str(report.checked), "   invalid ", str(report.invalid),
            "   fixed ", str(report.fixed),
        )  # fmt: skip
        for diff in report.differences:
            say(
                "  ", diff.user_id, ": balance ", str(diff.cached), " → ", str(diff.calculated),
                "   held ", str(diff.held_cached), " → ", str(diff.held_calculated),
                ("   (fixed)" if fix else ""),
            )  # fmt: skip
        if report.invalid > len(report.differences):
            say(f"  ... and {report.invalid - len(report.differences)} more")
    if report.invalid > report.fixed:
        raise typer.Exit(EXIT_INVALID)
