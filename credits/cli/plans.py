"""Plans from the command line: allowances, spend limits, alerts, auto top-up.

Why an operator needs these without Python: "give this customer 500 credits a
month", "cap this runaway key at 1,000 a day", "why did auto top-up stop?" and
"the payment went through, apply it" are support tasks, done at any hour.

Reads are top-level commands named for what they list (``credits allowances
USER``, ``credits limits USER``, ``credits alerts USER``, ``credits topup show
USER``); changes are in one group per kind (``credits allowance set|remove``,
``credits limit ...``, ``credits alert ...``, ``credits topup set|remove|confirm``).
Output follows :mod:`credits.cli.app`: one block per entry, no id cut, nothing a
user wrote read as markup, ``--json`` for the models. A bad option (an unknown
``--every``) exits 2 before anything is sent; the ledger's refusals exit 1; a
removal of what is not set exits 1 too, so a script notices a misspelt name.
"""

from __future__ import annotations

from typing import Annotated, Final

import typer
from rich.text import Text

from credits import limits
from credits.cli.app import (
    EXIT_INVALID,
    DataDirOption,
    JsonOption,
    app,
    console,
    fail,
    line,
    open_ledger,
    parse_instant,
    print_json,
    say,
    when,
)
from credits.models import Alert, Allowance, AutoTopup, SpendLimit, TopupConfirmation
from credits.plans.allowances import ALLOWANCE_PRIORITY_DEFAULT, EFFECTIVE
from credits.plans.calendar import PERIODS, WINDOWS


def _group(name: str, help_text: str) -> typer.Typer:
    return typer.Typer(
        name=name, help=help_text, no_args_is_help=True, add_completion=False, rich_markup_mode=None
    )


allowance_app: Final = _group("allowance", "Set or remove a user's recurring allowance.")
limit_app: Final = _group("limit", "Set or remove a user's spend limit.")
alert_app: Final = _group("alert", "Set or remove a user's balance alert.")
topup_app: Final = _group("topup", "A user's auto top-up: show, set, remove; confirm a payment.")

UserArgument = Annotated[str, typer.Argument(metavar="USER", help="The user id")]
NameArgument = Annotated[
    str,
    typer.Argument(metavar="NAME", help="The entry's name (ASCII letters, digits, _-.:)"),
]
AmountArgument = Annotated[
    int, typer.Argument(metavar="AMOUNT", min=1, max=limits.AMOUNT_MAX, help="Whole credits")
]
ScopeOption = Annotated[
    list[str] | None,
    typer.Option("--scope", help="An action it applies to; repeatable [default: every action]"),
]


def _choice(value: str, option: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise typer.BadParameter(f"{option} must be one of {', '.join(allowed)}")
    return value


def _print_blocks(blocks: list[list[Text]]) -> None:
    for block in blocks:
        console.print()
        for text in block:
            console.print(text)


def _scope_line(scope: list[str] | None) -> list[Text]:
    return [] if scope is None else [line("  only for ", ", ".join(scope))]


def _removed(found: bool, kind: str, user: str, name: str | None = None) -> None:
    what = kind if name is None else f"{kind} {name}"
    if not found:
        raise fail("no ", what, " is set for ", user, code=EXIT_INVALID)
    say("removed ", what, " of ", user)


# --------------------------------------------------------------------------- allowances


def allowance_lines(allowance: Allowance) -> list[Text]:
    """One block: the terms, the period granted last, and a change waiting for the next one."""
    lines = [
        line((allowance.name, "bold")),
        line(
            "  ",
            (str(allowance.amount), "bold"),
            f" credits every {allowance.every}",
            "   priority ",
            str(allowance.priority),
            "   rollover up to ",
            str(allowance.rollover_max),
        ),
        line("  periods from ", when(allowance.anchor)),
    ]
    if allowance.period_start is None:
        lines.append(line("  no period granted yet (the anchor is ahead)"))
    else:
        lines.append(
            line(
                "  period ",
                when(allowance.period_start),
                " → ",
                when(allowance.period_end),
                "   granted ",
                (str(allowance.granted), "bold"),
            )
        )
    lines += _scope_line(allowance.scope)
    change = allowance.next_change
    if change is not None:
        lines.append(
            line(
                ("  next period: ", "yellow"),
                str(change.get("amount")),
                " every ",
                str(change.get("every")),
                "   from ",
                when(change.get("effective_at")),
            )
        )
    return lines


@app.command("allowances")
def list_allowances(
    user: UserArgument, data_dir: DataDirOption = None, as_json: JsonOption = False
) -> None:
    """List a user's allowances: terms, the period granted last, what it granted."""
    with open_ledger(data_dir) as client:
        found = client.list_allowances(user)
    if as_json:
        print_json([allowance.model_dump() for allowance in found])
        return
    say(("allowances of ", "bold"), user, f": {len(found)}")
    _print_blocks([allowance_lines(allowance) for allowance in found])


@allowance_app.command("set")
def set_allowance(
    user: UserArgument,
    name: NameArgument,
    amount: AmountArgument,
    every: Annotated[str, typer.Option(help="day, week, month or year")],
    anchor: Annotated[
        str | None,
        typer.Option(help="Periods count from here: Unix ms, ISO 8601 or an age [default: now]"),
    ] = None,
    rollover_max: Annotated[
        int,
        typer.Option(min=0, max=limits.AMOUNT_MAX, help="Unused credits carried to the next one"),
    ] = 0,
    priority: Annotated[
        int,
        typer.Option(
            min=limits.LOT_PRIORITY_MIN, max=limits.LOT_PRIORITY_MAX, help="Lower is drawn first"
        ),
    ] = ALLOWANCE_PRIORITY_DEFAULT,
    scope: ScopeOption = None,
    effective: Annotated[
        str,
        typer.Option(help="next_period, or now (this period gets the difference at once)"),
    ] = "next_period",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Grant AMOUNT credits every period (UTC), as one lot per period that expires at its end.

    The period holding now is granted at once when the anchor has come. A change
    of an existing allowance applies from its next period, unless --effective now.
    Setting the same terms again grants nothing more.
    """
    _choice(every, "--every", PERIODS)
    _choice(effective, "--effective", EFFECTIVE)
    anchor_ms = parse_instant(anchor) if anchor is not None else None
    with open_ledger(data_dir) as client:
        made = client.set_allowance(
            user,
            name,
            amount,
            every=every,
            anchor=anchor_ms,
            rollover_max=rollover_max,
            priority=priority,
            scope=scope or None,
            effective=effective,
        )
    if as_json:
        print_json(made.model_dump())
        return
    say("allowance set for ", user)
    _print_blocks([allowance_lines(made)])


@allowance_app.command("remove")
def remove_allowance(
    user: UserArgument, name: NameArgument, data_dir: DataDirOption = None
) -> None:
    """Stop an allowance (the lot of its current period is left to expire)."""
    with open_ledger(data_dir) as client:
        found = client.remove_allowance(user, name)
    _removed(found, "allowance", user, name)


# --------------------------------------------------------------------------- spend limits


def limit_lines(limit: SpendLimit) -> list[Text]:
    return [
        line((limit.name, "bold")),
        line(
            "  used ", (str(limit.used), "bold"), " of ", str(limit.amount), f" per {limit.every}"
        ),
        line("  window ", when(limit.window_start), " → ", when(limit.window_end)),
        *_scope_line(limit.scope),
    ]


@app.command("limits")
def list_limits(
    user: UserArgument, data_dir: DataDirOption = None, as_json: JsonOption = False
) -> None:
    """List a user's spend limits with what the current window has used."""
    with open_ledger(data_dir) as client:
        found = client.list_limits(user)
    if as_json:
        print_json([limit.model_dump() for limit in found])
        return
    say(("spend limits of ", "bold"), user, f": {len(found)}")
    _print_blocks([limit_lines(limit) for limit in found])


@limit_app.command("set")
def set_limit(
    user: UserArgument,
    name: NameArgument,
    amount: AmountArgument,
    every: Annotated[str, typer.Option(help="hour, day, week or month (UTC windows)")],
    scope: ScopeOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """At most AMOUNT credits charged or held per window; a deduct past it is refused.

    Changing a limit keeps what its current window has used.
    """
    _choice(every, "--every", WINDOWS)
    with open_ledger(data_dir) as client:
        made = client.set_limit(user, name, amount, every=every, scope=scope or None)
    if as_json:
        print_json(made.model_dump())
        return
    say("spend limit set for ", user)
    _print_blocks([limit_lines(made)])


@limit_app.command("remove")
def remove_limit(user: UserArgument, name: NameArgument, data_dir: DataDirOption = None) -> None:
    """Drop a spend limit."""
    with open_ledger(data_dir) as client:
        found = client.remove_limit(user, name)
    _removed(found, "limit", user, name)


# --------------------------------------------------------------------------- alerts


def alert_lines(alert: Alert) -> list[Text]:
    state = ("below it now", "yellow") if alert.triggered else ("not below it", "green")
    return [line((alert.name, "bold"), "  below ", str(alert.below), "  ", state)]


@app.command("alerts")
def list_alerts(
    user: UserArgument, data_dir: DataDirOption = None, as_json: JsonOption = False
) -> None:
    """List a user's balance alerts and whether the balance is below each now."""
    with open_ledger(data_dir) as client:
        found = client.list_alerts(user)
    if as_json:
        print_json([alert.model_dump() for alert in found])
        return
    say(("alerts of ", "bold"), user, f": {len(found)}")
    _print_blocks([alert_lines(alert) for alert in found])


@alert_app.command("set")
def set_alert(
    user: UserArgument,
    name: NameArgument,
    below: Annotated[int, typer.Option(min=1, max=limits.AMOUNT_MAX, help="The balance threshold")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """balance.below once when the balance falls under BELOW, balance.recovered when back."""
    with open_ledger(data_dir) as client:
        made = client.set_alert(user, name, below=below)
    if as_json:
        print_json(made.model_dump())
        return
    say("alert set for ", user)
    _print_blocks([alert_lines(made)])


@alert_app.command("remove")
def remove_alert(user: UserArgument, name: NameArgument, data_dir: DataDirOption = None) -> None:
    """Drop a balance alert."""
    with open_ledger(data_dir) as client:
        found = client.remove_alert(user, name)
    _removed(found, "alert", user, name)


# --------------------------------------------------------------------------- auto top-up


def topup_lines(topup: AutoTopup) -> list[Text]:
    """The terms, whether it is on, the open request (with how to confirm it) and failures."""
    state = ("on", "green") if topup.enabled else ("off", "red")
    asks = f"add {topup.amount}" if topup.amount is not None else f"reach {topup.target}"
    cap = f"at most {topup.max_per_month}" if topup.max_per_month is not None else "no cap"
    lines = [
        line(("auto top-up ", "bold"), state, "  below ", str(topup.below), ": ", asks),
        line(
            f"  requests per month: {cap}   this month {topup.requested_this_month}",
            "   failed payments in a row ",
            str(topup.failures),
        ),
    ]
    if not topup.enabled:
        lines.append(line("  switched off after failed payments: set it again to switch it on"))
    if topup.open_topup_id is not None:
        lines.append(
            line("  open request ", (topup.open_topup_id, "bold"), f" for {topup.open_amount}")
        )
        lines.append(
            line(("  confirm: ", "dim"), "credits topup confirm ", topup.open_topup_id, " --paid")
        )
    return lines


@topup_app.command("show")
def show_topup(
    user: UserArgument, data_dir: DataDirOption = None, as_json: JsonOption = False
) -> None:
    """Show a user's auto top-up: its terms, the open request, failed payments."""
    with open_ledger(data_dir) as client:
        found = client.get_auto_topup(user)
    if as_json:
        print_json(None if found is None else found.model_dump())
        return
    if found is None:
        say("no auto top-up is set for ", user)
        return
    say(("auto top-up of ", "bold"), user)
    _print_blocks([topup_lines(found)])


@topup_app.command("set")
def set_topup(
    user: UserArgument,
    below: Annotated[
        int, typer.Option(min=1, max=limits.AMOUNT_MAX, help="Ask when the balance falls under")
    ],
    amount: Annotated[
        int | None, typer.Option(min=1, max=limits.AMOUNT_MAX, help="Credits to add")
    ] = None,
    target: Annotated[
        int | None, typer.Option(min=1, max=limits.AMOUNT_MAX, help="Or: the balance to reach")
    ] = None,
    max_per_month: Annotated[
        int | None,
        typer.Option(min=1, max=limits.TOPUP_MONTHLY_MAX, help="Requests per UTC month"),
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ask the app to charge the user (a topup.requested event) when the balance falls below.

    Exactly one of --amount or --target. Setting it again switches it back on
    after failed payments; a balance already below asks at once.
    """
    with open_ledger(data_dir) as client:
        made = client.set_auto_topup(
            user, below=below, amount=amount, target=target, max_per_month=max_per_month
        )
    if as_json:
        print_json(made.model_dump())
        return
    say("auto top-up set for ", user)
    _print_blocks([topup_lines(made)])


@topup_app.command("remove")
def remove_topup(user: UserArgument, data_dir: DataDirOption = None) -> None:
    """Switch auto top-up off (a topup.disabled event)."""
    with open_ledger(data_dir) as client:
        found = client.remove_auto_topup(user)
    _removed(found, "auto top-up", user)


def confirmation_lines(done: TopupConfirmation) -> list[Text]:
    if not done.paid:
        return [
            line(("not paid", "yellow"), ": the request is closed   balance ", str(done.balance)),
            line("  three failed payments in a row switch auto top-up off"),
        ]
    return [
        line(
            ("paid", "green"),
            ": ",
            (str(done.amount), "bold"),
            " credits granted   balance ",
            str(done.balance),
        ),
        line("  tx ", done.tx_id or "", "   lot ", done.lot_id or ""),
    ]


@topup_app.command("confirm")
def confirm_topup(
    topup_id: Annotated[
        str, typer.Argument(metavar="TOPUP_ID", help="From the topup.requested event")
    ],
    paid: Annotated[
        bool, typer.Option("--paid/--not-paid", help="Whether the payment went through")
    ],
    amount: Annotated[
        int | None,
        typer.Option(
            min=1, max=limits.AMOUNT_MAX, help="Credits to grant [default: the requested amount]"
        ),
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Apply the outcome of a top-up's payment, once per TOPUP_ID (safe to repeat).

    A repeat, even with another answer, prints the first confirmation.
    """
    with open_ledger(data_dir) as client:
        done = client.confirm_topup(topup_id, paid=paid, amount=amount)
    if as_json:
        print_json(done.model_dump())
        return
    say("top-up ", topup_id)
    for text in confirmation_lines(done):
        console.print(text)
