"""Read commands: ``balance``, ``history``, ``holds``, ``lots``.

Each prints text that never cuts an id and never interprets what a user wrote
(see :mod:`credits.cli.app`), or with ``--json`` the models themselves.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final

import typer
from rich.text import Text

from credits import limits
from credits.cli.app import (
    DataDirOption,
    JsonOption,
    SinceOption,
    UntilOption,
    app,
    console,
    line,
    open_ledger,
    print_json,
    say,
    time_range,
    when,
)
from credits.models import Account, Lot, Reservation, Transaction

HOLD_STATUSES: Final = ("open", "settled", "released", "expired", "all")
LOT_STATUSES: Final = ("pending", "active", "exhausted", "expired", "voided", "all")


def metadata_text(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


@app.command()
def balance(user: str, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Show a user's spendable balance and held credits."""
    with open_ledger(data_dir) as client:
        account = client.get_account(user)
    if as_json:
        print_json(account.model_dump())
        return
    print_account(account)


def print_account(account: Account) -> None:
    say(("account ", "bold"), account.user_id)
    say(
        "  balance ", (str(account.balance), "bold"),
        "   held ", str(account.held),
        "   created ", when(account.created_at),
    )  # fmt: skip


@app.command()
def history(
    user: str,
    limit: Annotated[
        int, typer.Option(min=1, max=limits.TRANSACTIONS_LIMIT_MAX, help="How many, newest first")
    ] = 20,
    since: SinceOption = None,
    until: UntilOption = None,
    before: Annotated[
        str | None, typer.Option(help="Only transactions older than this tx_id (paging)")
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a user's transactions, newest first, optionally in a time range."""
    start, end = time_range(since, until)
    with open_ledger(data_dir) as client:
        page = client.get_transactions(
            user, limit=limit, start_time=start, end_time=end, before=before
        )
    if as_json:
        print_json([tx.model_dump() for tx in page])
        return
    say(("history of ", "bold"), user, f": {len(page)} shown, newest first")
    for tx in page:
        console.print()
        for text in transaction_lines(tx):
            console.print(text)
    if not page:
        say(f"No transactions for {user} in this range.")
    elif len(page) == limit:
        console.print()
        say(("older: ", "dim"), "credits history ", user, " --before ", page[-1].tx_id)


def transaction_lines(tx: Transaction) -> list[Text]:
    """One block per transaction: every id whole, every field labelled."""
    lines = [
        line(
            (tx.tx_id, "bold"), "  ", when(tx.timestamp), "  ", (tx.type, "cyan"), "  ", tx.action
        ),
        line(
            "  amount ",
            str(tx.amount),
            "   balance ",
            f"{tx.balance_delta:+d}",
            " → ",
            str(tx.balance_after),
            "   held ",
            f"{tx.held_delta:+d}",
        ),
    ]
    if tx.reservation_id:
        lines.append(line("  reservation ", tx.reservation_id))
    for lot_id, delta in tx.lots.items():
        lines.append(line("  lot ", lot_id, f"  {delta:+d}"))
    if tx.forfeited:
        lines.append(line("  forfeited ", (str(tx.forfeited), "yellow"), " (its lot had ended)"))
    if tx.shortfall or tx.late:
        flags: list[str | tuple[str, str]] = []
        if tx.shortfall:
            flags += ["  shortfall ", (str(tx.shortfall), "yellow")]
        if tx.late:
            flags += ["  ", ("late", "yellow"), " (settled after the hold expired)"]
        lines.append(line(*flags))
    if tx.metadata:
        lines.append(line("  metadata ", metadata_text(tx.metadata)))
    return lines


@app.command()
def holds(
    user: str,
    status: Annotated[str, typer.Option(help="open, settled, released, expired, or all")] = "open",
    limit: Annotated[
        int, typer.Option(min=1, max=limits.RESERVATIONS_LIST_LIMIT_MAX, help="How many at most")
    ] = 100,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a user's holds, open ones soonest-expiring first (free one: `credits release ID`)."""
    if status not in HOLD_STATUSES:
        raise typer.BadParameter(f"--status must be one of {', '.join(HOLD_STATUSES)}")
    with open_ledger(data_dir) as client:
        found = client.list_reservations(user, None if status == "all" else status, limit=limit)
    if as_json:
        print_json([hold.model_dump() for hold in found])
        return
    held = sum(h.amount for h in found if h.status == "open")
    say(("holds of ", "bold"), user, f": {len(found)} {status}, {held} credits held by open ones")
    for hold in found:
        console.print()
        for text in hold_lines(hold):
            console.print(text)


def hold_lines(hold: Reservation) -> list[Text]:
    lines = [
        line((hold.id, "bold")),
        line("  ", (hold.status, "cyan"), "  ", str(hold.amount), " credits  ", hold.action),
        line("  created ", when(hold.created_at), "   expires ", when(hold.expires_at)),
    ]
    if hold.closed_at is not None:
        lines.append(line("  closed ", when(hold.closed_at)))
    if hold.metadata:
        lines.append(line("  metadata ", metadata_text(hold.metadata)))
    return lines


@app.command()
def lots(
    user: str,
    status: Annotated[
        str, typer.Option(help="pending, active, exhausted, expired, voided, or all")
    ] = "all",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a user's lots: active ones in the order they are drawn, then finished ones."""
    if status not in LOT_STATUSES:
        raise typer.BadParameter(f"--status must be one of {', '.join(LOT_STATUSES)}")
    with open_ledger(data_dir) as client:
        found = client.list_lots(user, None if status == "all" else status)
    if as_json:
        print_json([lot.model_dump() for lot in found])
        return
    spendable = sum(lot.remaining for lot in found if lot.status == "active")
    say(("lots of ", "bold"), user, f": {len(found)} {status}, {spendable} credits spendable")
    for lot in found:
        console.print()
        for text in lot_lines(lot):
            console.print(text)


def lot_lines(lot: Lot) -> list[Text]:
    expires = when(lot.expires_at) if lot.expires_at is not None else "never"
    lines = [
        line((lot.id, "bold")),
        line(
            "  ",
            (lot.status, "cyan"),
            "  ",
            lot.category,
            "  priority ",
            str(lot.priority),
            "  ",
            lot.action,
        ),
        line(
            "  remaining ",
            (str(lot.remaining), "bold"),
            " of ",
            str(lot.amount),
            "   held ",
            str(lot.held),
        ),
        line("  from ", when(lot.effective_at), "   expires ", expires),
    ]
    if lot.scope is not None:
        lines.append(line("  only for ", ", ".join(lot.scope)))
    if lot.metadata:
        lines.append(line("  metadata ", metadata_text(lot.metadata)))
    return lines
