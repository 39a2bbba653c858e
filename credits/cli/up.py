"""The ``credits`` command: run the system locally, play the demo, look at balances.

``credits up`` runs an embedded Redis (or ``CREDITS_REDIS_URL``), a worker with
beat and Flower in the foreground until Ctrl-C; ``credits demo`` plays the
four-app story; ``balance``, ``history`` and ``reconcile`` work against any
Redis. Printing is this module's job (Rich); the work is done elsewhere.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated, Final

import typer
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from credits import limits
from credits.cli.processes import (
    Child,
    ChildExitedError,
    UpState,
    child_env,
    flower_argv,
    wait_http_ok,
    wait_worker_ready,
    worker_argv,
)
from credits.client import Credits
from credits.errors import CreditsError
from credits.settings import CreditsSettings, redact_url

app = typer.Typer(
    name="credits",
    help="A credits ledger for metered AI apps, on Redis, with Celery workers.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

FLOWER_PORT_DEFAULT: Final = 5555
LOOPBACK: Final = "127.0.0.1"
SUPERVISE_POLL_S: Final = 0.5
EXIT_INVALID: Final = 1
EXIT_NO_REDIS: Final = 2

DataDirOption = Annotated[
    Path | None,
    typer.Option(help="Data dir of the embedded Redis [default: CREDITS_DATA_DIR or .credits]"),
]


def _data_dir(option: Path | None) -> Path:
    return (option or CreditsSettings().data_dir).resolve()


def _redis_url(data_dir: Path) -> str:
    """``CREDITS_REDIS_URL``, else the Redis of a running ``credits up``; exits 2 if neither."""
    settings = CreditsSettings()
    if settings.redis_url:
        return settings.redis_url
    state = UpState.read_live(data_dir)
    if state is not None:
        return state.redis_url
    err_console.print(
        "[red]No Redis:[/] set CREDITS_REDIS_URL, or start one with [bold]credits up[/]."
    )
    raise typer.Exit(EXIT_NO_REDIS)


@contextmanager
def _ledger(data_dir: Path) -> Iterator[Credits]:
    """A client of ``CREDITS_REDIS_URL`` (token, cluster and all), else of ``credits up``."""
    configured = CreditsSettings().redis_url is not None
    url = None if configured else _redis_url(data_dir)
    try:
        with Credits.from_env() if configured else Credits(url) as client:
            yield client
    except CreditsError as exc:
        err_console.print(f"[red]{type(exc).__name__}:[/] {exc}")
        raise typer.Exit(EXIT_INVALID) from None


# --------------------------------------------------------------------------- up


class _StopRequested:
    """Turns SIGINT and SIGTERM into a flag the supervisor loop checks."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _StopRequested:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


@app.command()
def up(
    data_dir: DataDirOption = None,
    flower_port: Annotated[int, typer.Option(help="Flower's port")] = FLOWER_PORT_DEFAULT,
    flower_address: Annotated[str, typer.Option(help="Flower's address")] = LOOPBACK,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Worker processes")] = 2,
) -> None:
    """Run Redis (embedded, unless CREDITS_REDIS_URL is set), a worker with beat, and Flower.

    Stays in the foreground; Ctrl-C (or SIGTERM) stops everything it started.
    """
    from credits.redis_server import embedded_server, stop_embedded
    from credits.tasks.settings import WorkerSettings

    directory = _data_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    if UpState.read_live(directory) is not None:
        err_console.print(f"[red]credits up is already running for {directory}[/]")
        raise typer.Exit(EXIT_INVALID)
    logs = directory / "logs"
    hostname = f"credits-{uuid.uuid4().hex[:6]}@%h"
    flower_url = f"http://{flower_address}:{flower_port}"

    with _StopRequested() as stop, ExitStack() as cleanup:
        url = WorkerSettings().store_url()
        embedded = url is None
        if url is None:
            with console.status("Starting the embedded redis-server (AOF on) ..."):
                url = embedded_server(directory).url
            cleanup.callback(stop_embedded, directory)
        env = child_env(url if embedded else None)
        worker = Child(
            "worker",
            worker_argv(
                hostname=hostname,
                concurrency=concurrency,
                beat_schedule=directory / "celerybeat-schedule",
            ),
            env=env,
            log_path=logs / "worker.log",
        )
        flower = Child(
            "flower",
            flower_argv(address=flower_address, port=flower_port),
            env=env,
            log_path=logs / "flower.log",
        )
        # Stopped in reverse: Flower first, then the worker (warm shutdown), then Redis.
        cleanup.callback(worker.stop)
        cleanup.callback(flower.stop)
        cleanup.callback(UpState.remove, directory)
        try:
            with console.status("Starting the worker (with beat) and Flower ..."):
                worker.start()
                flower.start()
                wait_worker_ready(worker, hostname.replace("%h", _host()))
                wait_http_ok(flower, f"{flower_url}/healthcheck")
        except (ChildExitedError, TimeoutError) as exc:
            err_console.print(f"[red]Could not start:[/] {exc}")
            raise typer.Exit(EXIT_INVALID) from None
        UpState(pid=os.getpid(), redis_url=url, flower_url=flower_url).write(directory)
        _print_up_panel(url, embedded, directory, flower_url, worker, flower)
        failed = _supervise(stop.event, (worker, flower))
        console.print("Stopping ...")
    console.print("Stopped.")
    if failed:
        raise typer.Exit(EXIT_INVALID)


def _host() -> str:
    # Celery expands %h to the full host name (socket.gethostname()).
    import socket

    return socket.gethostname()


def _print_up_panel(
    url: str, embedded: bool, directory: Path, flower_url: str, worker: Child, flower: Child
) -> None:
    source = f"embedded, data in {directory}" if embedded else "CREDITS_REDIS_URL"
    lines = [
        f"[bold]Redis[/]    {redact_url(url)}  ({source})",
        f"[bold]Worker[/]   pid {worker.pid}, beat on  (log: {worker.log_path})",
        f"[bold]Flower[/]   {flower_url}  (log: {flower.log_path}; "
        "FLOWER_BASIC_AUTH=user:pass puts the UI and /metrics behind a login)",
        "",
        "Try [bold]credits demo[/] in another terminal, from this directory: it finds this Redis.",
        "Ctrl-C stops everything.",
    ]
    console.print(Panel("\n".join(lines), title="credits up", expand=False))


# A child that dies is started again, up to this many times in all: kombu 5.7
# can kill a worker on a broker restart ("Unrecoverable error", see
# docs/RELIABILITY.md) while nothing is wrong with the ledger, and no task is
# lost with it (late acks, outbox). A child that keeps dying stops `credits up`.
CHILD_RESTARTS_MAX = 5


def _supervise(stop: threading.Event, children: tuple[Child, ...]) -> bool:
    """Wait for Ctrl-C/SIGTERM, restarting dead children; True if one died too often."""
    restarts = 0
    while not stop.wait(SUPERVISE_POLL_S):
        for child in children:
            try:
                child.check_running()
            except ChildExitedError as exc:
                err_console.print(f"[red]{exc}[/]")
                if restarts >= CHILD_RESTARTS_MAX:
                    err_console.print(f"[red]{child.name} died {restarts + 1} times; stopping.[/]")
                    return True
                restarts += 1
                err_console.print(
                    f"[yellow]restarting {child.name} ({restarts} of {CHILD_RESTARTS_MAX})[/]"
                )
                child.start()
    return False


# --------------------------------------------------------------------------- demo


@app.command()
def demo(data_dir: DataDirOption = None) -> None:
    """Play the four-app story against CREDITS_REDIS_URL, a running `credits up`, or its own Redis.

    Starts a worker of its own (and a throwaway redis-server if none is set up),
    prints what happened, and exits 0 only if every check held.
    """
    from credits.cli.demo import CeleryTasks, run_story
    from credits.redis_server import RedisServer
    from credits.tasks import app as celery_app
    from credits.tasks.settings import WorkerSettings

    directory = _data_dir(data_dir)
    scratch = Path(tempfile.mkdtemp(prefix="credits-demo-"))
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, scratch, ignore_errors=True)
        settings = WorkerSettings()
        url = settings.store_url()
        state = None if url else UpState.read_live(directory)
        if url:
            source, own = "CREDITS_REDIS_URL", None
            broker, backend = settings.broker() or url, settings.backend() or url
        elif state is not None:
            url, source = state.redis_url, f"credits up (pid {state.pid})"
            broker = backend = own = url
        else:
            with console.status("No Redis configured: starting a redis-server for the demo ..."):
                server = RedisServer(scratch / "redis", persistent=True).start()
            cleanup.callback(server.stop)
            url, source = server.url, "a redis-server started for this demo"
            broker = backend = own = url
        celery_app.conf.update(broker_url=broker, result_backend=backend)

        queue = f"credits-demo-{uuid.uuid4().hex[:8]}"
        hostname = f"{queue}@{_host()}"
        worker = Child(
            "demo worker",
            worker_argv(hostname=hostname, concurrency=2, queues=(queue,)),
            env=child_env(own),
            log_path=scratch / "worker.log",
        )
        cleanup.callback(worker.stop)
        console.print(f"Redis: [bold]{redact_url(url)}[/] ({source})")
        try:
            with console.status("Starting a worker ..."):
                worker.start()
                wait_worker_ready(worker, hostname)
        except (ChildExitedError, TimeoutError) as exc:
            err_console.print(f"[red]The demo worker did not start:[/] {exc}")
            raise typer.Exit(EXIT_INVALID) from None

        run_id = uuid.uuid4().hex[:8]
        with console.status("Playing the four apps ..."):
            checks = run_story(
                url,
                CeleryTasks(queue),
                run_id=run_id,
                cluster=own is None and settings.redis_cluster,
            )
        table = Table(title="credits demo: four apps, one balance per user")
        for column in ("#", "app", "what happened", "expected", "got", ""):
            table.add_column(column)
        for number, check in enumerate(checks, 1):
            mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
            table.add_row(str(number), check.app, check.step, check.expected, check.got, mark)
        console.print(table)
        failed = [c for c in checks if not c.ok]
        if failed:
            console.print(f"[red]{len(failed)} of {len(checks)} checks failed.[/]")
            console.print(f"Worker log: {worker.log_tail()}")
            raise typer.Exit(EXIT_INVALID)
        console.print(f"[green]All {len(checks)} checks held.[/]")
        if source != "a redis-server started for this demo":
            console.print(f"See them: [bold]credits history demo-{run_id}-ana[/]")


# --------------------------------------------------------------------------- ledger views


@app.command()
def balance(user: str, data_dir: DataDirOption = None) -> None:
    """Show a user's spendable balance and held credits."""
    with _ledger(_data_dir(data_dir)) as client:
        account = client.get_account(user)
    table = Table(title=f"account {user}")
    for column in ("balance", "held", "created"):
        table.add_column(column, justify="right")
    created = _when(account.created_at) if account.created_at is not None else "never"
    table.add_row(str(account.balance), str(account.held), created)
    console.print(table)


@app.command()
def history(
    user: str,
    limit: Annotated[
        int, typer.Option(min=1, max=limits.TRANSACTIONS_LIMIT_MAX, help="How many, newest first")
    ] = 20,
    data_dir: DataDirOption = None,
) -> None:
    """Show a user's latest transactions, newest first."""
    with _ledger(_data_dir(data_dir)) as client:
        transactions = client.get_transactions(user, limit=limit)
    table = Table(title=f"history of {user} (newest first)")
    for column, justify in (
        ("time (UTC)", "left"),
        ("type", "left"),
        ("action", "left"),
        ("amount", "right"),
        ("balance Δ", "right"),
        ("held Δ", "right"),
        ("balance after", "right"),
        ("reservation", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for tx in transactions:
        table.add_row(
            _when(tx.timestamp),
            tx.type,
            tx.action,
            str(tx.amount),
            f"{tx.balance_delta:+d}",
            f"{tx.held_delta:+d}",
            str(tx.balance_after),
            tx.reservation_id or "",
        )
    console.print(table)
    if not transactions:
        console.print(f"No transactions for {user}.")


def _when(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


@app.command()
def reconcile(
    fix: Annotated[bool, typer.Option("--fix", help="Rebuild balances that differ")] = False,
    batch_size: Annotated[
        int,
        typer.Option(min=1, max=limits.RECONCILE_BATCH_USERS_MAX, help="Users read per batch"),
    ] = limits.RECONCILE_BATCH_USERS_DEFAULT,
    data_dir: DataDirOption = None,
) -> None:
    """Verify every user's cached balance against its log (the same work as the beat task).

    Exits 1 if a balance differs and was not fixed.
    """
    with (
        _ledger(_data_dir(data_dir)) as client,
        Progress(
            TextColumn("[bold]reconcile"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress,
    ):
        task = progress.add_task("users", total=None)

        def advance(checked: int, total: int) -> None:
            progress.update(task, completed=checked, total=total)

        report = client.reconcile(fix=fix, batch_size=batch_size, progress=advance)
        progress.update(task, completed=report.checked, total=max(report.checked, 1))
    table = Table(title="reconcile" + (" --fix" if fix else ""))
    for column in ("checked", "invalid", "fixed"):
        table.add_column(column, justify="right")
    summary = report.summary()
    table.add_row(str(summary["checked"]), str(summary["invalid"]), str(summary["fixed"]))
    console.print(table)
    if report.invalid_users:
        console.print("Differed: " + ", ".join(report.invalid_users[:20]))
    if report.invalid > report.fixed:
        raise typer.Exit(EXIT_INVALID)


# --------------------------------------------------------------------------- flower


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def flower(ctx: typer.Context) -> None:
    """Run Flower (extra options go to Flower, e.g. --port=5555); FLOWER_BASIC_AUTH protects it."""
    from credits.tasks.flower import main as flower_main

    raise typer.Exit(flower_main(list(ctx.args)) or 0)


def main() -> None:
    app()
