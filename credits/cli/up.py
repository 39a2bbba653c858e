"""The local system: ``credits up``, ``credits url``, ``credits demo``, ``credits flower``.

``credits up`` runs an embedded Redis (or uses ``CREDITS_REDIS_URL``), a
worker with beat, Flower and the HTTP API in the foreground until Ctrl-C. What
it promises a new user, and why:

* **A stable address.** A new embedded server listens on ``--redis-port``
  (6390 by default, beside a system Redis's 6379), so a ``.env`` or the
  webhook example keeps working after a restart; ``credits url`` prints it.
  A server already running for the data dir (one ``Credits.embedded()``
  started) is reused where it is.
* **It stops only what it started.** A reused embedded server is left running.
* **It fails fast and says why.** An unreachable ``CREDITS_REDIS_URL`` is
  reported in seconds (not blamed on the worker a minute later), and a busy
  port is named before anything starts, instead of a child's traceback.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import threading
import uuid
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Annotated, Final

import redis
import typer
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from credits.cli.app import (
    EXIT_INVALID,
    EXIT_NO_REDIS,
    DataDirOption,
    JsonOption,
    app,
    console,
    fail,
    line,
    print_json,
    redis_url_of,
    say,
    warn,
)
from credits.cli.app import data_dir as resolve_data_dir
from credits.cli.processes import (
    Child,
    ChildExitedError,
    UpState,
    api_argv,
    child_env,
    flower_argv,
    wait_http_ok,
    wait_worker_ready,
    worker_argv,
)
from credits.redis_server import port_is_free
from credits.settings import redact_url

FLOWER_PORT_DEFAULT: Final = 5555
API_PORT_DEFAULT: Final = 8000
REDIS_PORT_DEFAULT: Final = 6390
LOOPBACK: Final = "127.0.0.1"
SUPERVISE_POLL_S: Final = 0.5
STORE_PROBE_TIMEOUT_S: Final = 3.0


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


def _http_extra_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) for name in ("fastapi", "uvicorn", "jinja2"))


def _check_ports(ports: dict[str, tuple[str, int]]) -> None:
    """Names every busy port before anything starts (instead of a child's traceback)."""
    for option, (host, port) in ports.items():
        if not port_is_free(port, host):
            raise fail(
                ("Port busy: ", "red"),
                f"{host}:{port} is in use; pass {option} with a free port.",
                code=EXIT_INVALID,
            )


def _check_store(url: str) -> None:
    """Exits 2, naming CREDITS_REDIS_URL, when the configured Redis does not answer."""
    try:
        with redis.Redis.from_url(
            url, socket_connect_timeout=STORE_PROBE_TIMEOUT_S, socket_timeout=STORE_PROBE_TIMEOUT_S
        ) as probe:
            probe.ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise fail(
            ("Cannot reach CREDITS_REDIS_URL ", "red"),
            f"({redact_url(url)}): {type(exc).__name__}: {exc}",
            code=EXIT_NO_REDIS,
        ) from None


@app.command()
def up(
    data_dir: DataDirOption = None,
    redis_port: Annotated[
        int,
        typer.Option(
            min=1, max=65_535, help="Port of a new embedded Redis (a running one keeps its own)"
        ),
    ] = REDIS_PORT_DEFAULT,
    flower_port: Annotated[int, typer.Option(help="Flower's port")] = FLOWER_PORT_DEFAULT,
    flower_address: Annotated[str, typer.Option(help="Flower's address")] = LOOPBACK,
    api_port: Annotated[int, typer.Option(help="The HTTP API's port")] = API_PORT_DEFAULT,
    api: Annotated[
        bool, typer.Option("--api/--no-api", help="Also serve the HTTP API and admin page")
    ] = True,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Worker processes")] = 2,
) -> None:
    """Run Redis (embedded unless CREDITS_REDIS_URL is set), a worker with beat, Flower, the API.

    Stays in the foreground; Ctrl-C (or SIGTERM) stops everything it started,
    and nothing it only reused.
    """
    from credits.redis_server import open_embedded, running_embedded_url, stop_embedded
    from credits.tasks.settings import WorkerSettings

    directory = resolve_data_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    if UpState.read_live(directory) is not None:
        raise fail(f"credits up is already running for {directory}", code=EXIT_INVALID)
    serve_api = api and _http_extra_installed()
    if api and not serve_api:
        warn("The HTTP API needs the 'http' extra (pip install 'credits[http]'); not serving it.")
    url = WorkerSettings().store_url()
    ports = {"--flower-port": (flower_address, flower_port)}
    if serve_api:
        ports["--api-port"] = (LOOPBACK, api_port)
    if url is None and running_embedded_url(directory) is None:
        ports["--redis-port"] = (LOOPBACK, redis_port)
    _check_ports(ports)
    if url is not None:
        _check_store(url)
    logs = directory / "logs"
    hostname = f"credits-{uuid.uuid4().hex[:6]}@%h"
    flower_url = f"http://{flower_address}:{flower_port}"
    api_url = f"http://{LOOPBACK}:{api_port}" if serve_api else None

    with _StopRequested() as stop, ExitStack() as cleanup:
        embedded = url is None
        reused = False
        if url is None:
            with console.status("Starting the embedded redis-server (AOF on) ..."):
                opened = open_embedded(directory, port=redis_port)
            url, reused = opened.server.url, not opened.started
            if opened.started:
                cleanup.callback(stop_embedded, directory)
        env = child_env(url if embedded else None)
        children = [
            Child(
                "worker",
                worker_argv(
                    hostname=hostname,
                    concurrency=concurrency,
                    beat_schedule=directory / "celerybeat-schedule",
                ),
                env=env,
                log_path=logs / "worker.log",
            ),
            Child(
                "flower",
                flower_argv(address=flower_address, port=flower_port),
                env=env,
                log_path=logs / "flower.log",
            ),
        ]
        if serve_api:
            api_argv_ = api_argv(host=LOOPBACK, port=api_port)
            children.append(Child("api", api_argv_, env=env, log_path=logs / "api.log"))
        worker, flower = children[0], children[1]
        # Stopped in reverse: the API and Flower first, then the worker (warm shutdown), then Redis.
        for child in children:
            cleanup.callback(child.stop)
        cleanup.callback(UpState.remove, directory)
        try:
            with console.status("Starting the worker (with beat), Flower and the API ..."):
                for child in children:
                    child.start()
                wait_worker_ready(worker, hostname.replace("%h", socket.gethostname()))
                wait_http_ok(flower, f"{flower_url}/healthcheck")
                if serve_api:
                    wait_http_ok(children[2], f"{api_url}/healthz")
        except (ChildExitedError, TimeoutError) as exc:
            raise fail(("Could not start: ", "red"), str(exc), code=EXIT_INVALID) from None
        UpState(pid=os.getpid(), redis_url=url, flower_url=flower_url, api_url=api_url).write(
            directory
        )
        _print_up_panel(url, embedded, reused, directory, flower_url, api_url, children)
        failed = _supervise(stop.event, tuple(children))
        console.print("Stopping ...")
    console.print("Stopped.")
    if failed:
        raise typer.Exit(EXIT_INVALID)


def _print_up_panel(
    url: str,
    embedded: bool,
    reused: bool,
    directory: Path,
    flower_url: str,
    api_url: str | None,
    children: list[Child],
) -> None:
    if embedded:
        source = f"embedded, data in {directory}"
        if reused:
            source += ", reused: left running on exit"
    else:
        source = "CREDITS_REDIS_URL"
    worker, flower = children[0], children[1]
    lines = [
        line(("Redis   ", "bold"), redact_url(url), f"  ({source})"),
        line(("Worker  ", "bold"), f"pid {worker.pid}, beat on  (log: {worker.log_path})"),
        line(
            ("Flower  ", "bold"),
            flower_url,
            f"  (log: {flower.log_path}; "
            "FLOWER_BASIC_AUTH=user:pass puts the UI and /metrics behind a login)",
        ),
    ]
    if api_url is not None:
        lines.append(
            line(
                ("API     ", "bold"),
                api_url,
                "/v1  admin ",
                api_url,
                "/admin  (a key: credits keys create --scope admin)",
            )
        )
    lines += [
        Text(""),
        line("Point an app at it: export CREDITS_REDIS_URL=$(credits url)"),
        line("Try `credits demo` in another terminal, from this directory: it finds this Redis."),
        line("Ctrl-C stops everything."),
    ]
    console.print(Panel(Text("\n").join(lines), title="credits up", expand=False))


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
                warn((str(exc), "red"))
                if restarts >= CHILD_RESTARTS_MAX:
                    warn((f"{child.name} died {restarts + 1} times; stopping.", "red"))
                    return True
                restarts += 1
                warn((f"restarting {child.name} ({restarts} of {CHILD_RESTARTS_MAX})", "yellow"))
                child.start()
    return False


@app.command()
def url(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Print the Redis URL of the local system (`credits up`, or the data dir's embedded server).

    For a .env: CREDITS_REDIS_URL=$(credits url). With --json, also Flower's and the API's.
    """
    directory = resolve_data_dir(data_dir)
    state = UpState.read_live(directory)
    redis_url = state.redis_url if state is not None else redis_url_of(directory)
    if redis_url is None:
        raise fail(
            "Nothing is running for ", str(directory), ": start it with `credits up`.",
            code=EXIT_NO_REDIS,
        )  # fmt: skip
    if as_json:
        print_json(
            {
                "redis_url": redis_url,
                "flower_url": state.flower_url if state else None,
                "api_url": state.api_url if state else None,
            }
        )
        return
    console.print(redis_url)


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
    from credits.tasks.settings import WorkerSettings, celery_connection

    directory = resolve_data_dir(data_dir)
    scratch = Path(tempfile.mkdtemp(prefix="credits-demo-"))
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, scratch, ignore_errors=True)
        settings = WorkerSettings()
        store_url = settings.store_url()
        state = None if store_url else UpState.read_live(directory)
        if store_url:
            source, own = "CREDITS_REDIS_URL", None
            broker, backend = settings.broker() or store_url, settings.backend() or store_url
        elif state is not None:
            store_url, source = state.redis_url, f"credits up (pid {state.pid})"
            broker = backend = own = store_url
        else:
            with console.status("No Redis configured: starting a redis-server for the demo ..."):
                server = RedisServer(scratch / "redis", persistent=True).start()
            cleanup.callback(server.stop)
            store_url, source = server.url, "a redis-server started for this demo"
            broker = backend = own = store_url
        celery_app.conf.update(celery_connection(celery_app.conf, broker, backend))

        queue = f"credits-demo-{uuid.uuid4().hex[:8]}"
        hostname = f"{queue}@{socket.gethostname()}"
        worker = Child(
            "demo worker",
            worker_argv(hostname=hostname, concurrency=2, queues=(queue,)),
            env=child_env(own),
            log_path=scratch / "worker.log",
        )
        cleanup.callback(worker.stop)
        say("Redis: ", (redact_url(store_url), "bold"), f" ({source})")
        try:
            with console.status("Starting a worker ..."):
                worker.start()
                wait_worker_ready(worker, hostname)
        except (ChildExitedError, TimeoutError) as exc:
            raise fail(("The demo worker did not start: ", "red"), str(exc)) from None

        run_id = uuid.uuid4().hex[:8]
        with console.status("Playing the four apps ..."):
            checks = run_story(
                store_url,
                CeleryTasks(queue),
                run_id=run_id,
                cluster=own is None and settings.redis_cluster,
            )
        table = Table(title="credits demo: four apps, one balance per user")
        for column in ("#", "app", "what happened", "expected", "got", ""):
            table.add_column(column, overflow="fold")
        for number, check in enumerate(checks, 1):
            mark = Text("✓", style="green") if check.ok else Text("✗", style="red")
            table.add_row(
                str(number), Text(check.app), Text(check.step), Text(check.expected),
                Text(check.got), mark,
            )  # fmt: skip
        console.print(table)
        failed = [c for c in checks if not c.ok]
        if failed:
            say((f"{len(failed)} of {len(checks)} checks failed.", "red"))
            say("Worker log: ", worker.log_tail())
            raise typer.Exit(EXIT_INVALID)
        say((f"All {len(checks)} checks held.", "green"))
        if source != "a redis-server started for this demo":
            say("See them: ", ("credits history demo-" + run_id + "-ana", "bold"))


# --------------------------------------------------------------------------- flower


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def flower(ctx: typer.Context) -> None:
    """Run Flower (extra options go to Flower, e.g. --port=5555); FLOWER_BASIC_AUTH protects it.

    Refuses to start, like the worker, when no broker is configured.
    """
    from credits.tasks.flower import main as flower_main

    raise typer.Exit(flower_main(list(ctx.args)) or 0)
