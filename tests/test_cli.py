"""The ``credits`` command, run as a subprocess the way a user runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cli_rig import WIDE, credits_cli
from worker_rig import REPO_ROOT, clean_env

from credits import Credits
from credits.keys import user_keys
from credits.redis_server import free_port, pid_is_alive, stop_embedded
from credits.waiting import wait_until

pytestmark = pytest.mark.system  # starts its own servers or processes

UP_START_TIMEOUT_S = 90.0
UP_STOP_TIMEOUT_S = 60.0


@pytest.fixture
def client(redis_url: str) -> Iterator[Credits]:
    with Credits(redis_url) as ledger_client:
        yield ledger_client


def test_help_lists_the_commands() -> None:
    done = credits_cli("--help", env=clean_env(**WIDE))
    assert done.returncode == 0, done.stderr
    for command in (
        "up", "url", "demo", "balance", "history", "holds", "grant", "release", "verify",
        "reconcile", "export", "keys", "serve", "flower",
    ):  # fmt: skip
        assert command in done.stdout


def test_the_installed_entry_point_runs() -> None:
    script = Path(sys.executable).with_name("credits")
    if not script.exists():
        pytest.skip("the console script is not installed next to this interpreter")
    done = subprocess.run(
        [str(script), "--help"], env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_demo_with_no_redis_configured_starts_its_own(tmp_path: Path) -> None:
    env = clean_env(CREDITS_DATA_DIR=str(tmp_path / "data"), **WIDE)
    done = credits_cli("demo", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "a redis-server started for this demo" in done.stdout
    assert "All 18 checks held." in done.stdout
    assert "✗" not in done.stdout


def test_demo_against_credits_redis_url(redis_url: str, tmp_path: Path) -> None:
    env = clean_env(CREDITS_REDIS_URL=redis_url, CREDITS_DATA_DIR=str(tmp_path), **WIDE)
    done = credits_cli("demo", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(CREDITS_REDIS_URL)" in done.stdout
    assert "checks held." in done.stdout


def test_balance_and_history(redis_url: str, client: Credits, user_id: str) -> None:
    client.initialize_user(user_id, 500)
    client.deduct(user_id, 10, "chat_message")
    hold = client.reserve(user_id, 100, "video_generation", ttl=600)
    env = clean_env(CREDITS_REDIS_URL=redis_url, **WIDE)

    balance = credits_cli("balance", user_id, env=env)
    assert balance.returncode == 0, balance.stderr
    assert "390" in balance.stdout and "100" in balance.stdout

    history = credits_cli("history", user_id, "--limit", "10", env=env)
    assert history.returncode == 0, history.stderr
    lines = history.stdout
    assert lines.index("reserve") < lines.index("deduct") < lines.index("initialize")
    assert hold.id in lines


def test_reconcile_reports_then_fixes(redis_url: str, client: Credits, user_id: str) -> None:
    client.initialize_user(user_id, 1000)
    client.redis.hset(user_keys(user_id).account, "bal", 999)  # behind the ledger's back
    env = clean_env(CREDITS_REDIS_URL=redis_url, **WIDE)

    found = credits_cli("reconcile", env=env)
    assert found.returncode == 1, found.stdout + found.stderr
    assert "invalid" in found.stdout
    assert f"{user_id}: balance 999 → 1000" in found.stdout  # cached → calculated
    assert not client.verify_balance(user_id).valid

    fixed = credits_cli("reconcile", "--fix", env=env)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert client.verify_balance(user_id).valid
    assert client.get_balance(user_id) == 1000


def test_commands_without_redis_say_how_to_get_one(tmp_path: Path) -> None:
    done = credits_cli("balance", "someone", env=clean_env(CREDITS_DATA_DIR=str(tmp_path)))
    assert done.returncode == 2
    assert "CREDITS_REDIS_URL" in done.stderr and "credits up" in done.stderr


def _start_up(
    tmp_path: Path, env: dict[str, str], *args: str
) -> tuple[subprocess.Popen[bytes], Path]:
    out_path = tmp_path / "up.out"
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from credits.cli import main; main()", "up", *args],
            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def started() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"credits up exited {proc.returncode}:\n{out_path.read_text()}")
        return "Ctrl-C stops everything" in out_path.read_text()

    wait_until(started, timeout_s=UP_START_TIMEOUT_S, what="credits up")
    return proc, out_path


def _stop_up(proc: subprocess.Popen[bytes], out_path: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=UP_STOP_TIMEOUT_S) == 0, out_path.read_text()
    assert "Stopped." in out_path.read_text()


def test_up_runs_everything_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    flower_port, api_port, redis_port = free_port(), free_port(), free_port()
    env = clean_env(CREDITS_DATA_DIR=str(data_dir), **WIDE)
    proc, out_path = _start_up(
        tmp_path, env, "--flower-port", str(flower_port), "--api-port", str(api_port),
        "--redis-port", str(redis_port),
    )  # fmt: skip
    try:
        state = json.loads((data_dir / "credits-up.json").read_text())
        redis_pid = json.loads((data_dir / "credits-redis.json").read_text())["pid"]
        assert httpx.get(f"{state['flower_url']}/healthcheck", timeout=5).status_code == 200
        assert httpx.get(f"{state['api_url']}/healthz", timeout=5).json()["status"] == "ok"
        worker_log = (data_dir / "logs" / "worker.log").read_text()
        assert "beat: Starting" in worker_log
        with Credits(state["redis_url"]) as up_client:
            assert up_client.redis.config_get("appendonly")["appendonly"] == "yes"

        # A stable address, printed for a .env; the other commands find it too.
        url = credits_cli("url", env=env)
        assert url.returncode == 0, url.stderr
        assert url.stdout.strip() == f"redis://127.0.0.1:{redis_port}/0" == state["redis_url"]
        urls = json.loads(credits_cli("url", "--json", env=env).stdout)
        assert urls["api_url"] == f"http://127.0.0.1:{api_port}"
        balance = credits_cli("balance", "nobody", env=env)
        assert balance.returncode == 0, balance.stderr

        _stop_up(proc, out_path)
        assert not (data_dir / "credits-up.json").exists()
        wait_until(lambda: not pid_is_alive(redis_pid), timeout_s=10, what="redis-server to stop")
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def test_up_leaves_running_an_embedded_server_it_only_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = clean_env(CREDITS_DATA_DIR=str(data_dir), **WIDE)
    with Credits.embedded(data_dir) as embedded:
        embedded.add("kept-user", 7, "grant")
    redis_pid = json.loads((data_dir / "credits-redis.json").read_text())["pid"]
    try:
        # Without `credits up`, the commands find the running embedded server's data.
        seen = credits_cli("balance", "kept-user", "--json", env=env)
        assert seen.returncode == 0, seen.stderr
        assert json.loads(seen.stdout)["balance"] == 7

        proc, out_path = _start_up(tmp_path, env, "--flower-port", str(free_port()), "--no-api")
        try:
            assert "reused: left running on exit" in out_path.read_text()
            _stop_up(proc, out_path)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        assert pid_is_alive(redis_pid), "credits up stopped a server it did not start"
        with Credits.embedded(data_dir) as again:
            assert again.get_balance("kept-user") == 7
    finally:
        stop_embedded(data_dir)


def test_up_with_an_unreachable_redis_url_fails_fast_and_says_so(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    env = clean_env(CREDITS_REDIS_URL=url, CREDITS_DATA_DIR=str(tmp_path), **WIDE)
    started = time.monotonic()
    done = credits_cli("up", "--flower-port", str(free_port()), "--no-api", env=env)
    assert time.monotonic() - started < 30
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Cannot reach CREDITS_REDIS_URL" in done.stderr and url in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "logs" / "worker.log").exists(), "no worker was started"


def test_up_names_a_busy_port_instead_of_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = clean_env(CREDITS_DATA_DIR=str(tmp_path / "data"), **WIDE)
        done = credits_cli("up", "--flower-port", str(port), "--no-api", env=env)
    assert done.returncode == 1
    assert f"127.0.0.1:{port} is in use; pass --flower-port" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "data" / "credits-redis.json").exists(), "nothing was started"


def test_flower_with_no_broker_refuses_like_the_worker(tmp_path: Path) -> None:
    started = time.monotonic()
    done = credits_cli("flower", "--port", str(free_port()), env=clean_env(), timeout_s=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no Celery broker configured" in done.stderr
    assert time.monotonic() - started < 30


def test_up_restarts_a_child_that_dies_then_gives_up(tmp_path: Path) -> None:
    """A worker killed by a broker hiccup comes back; one that keeps dying stops `credits up`."""
    import sys
    import threading

    from credits.cli.processes import Child
    from credits.cli.up import CHILD_RESTARTS_MAX, _supervise

    log = tmp_path / "child.log"
    child = Child(
        "flaky",
        [sys.executable, "-c", "print('started'); raise SystemExit(3)"],
        env={},
        log_path=log,
    ).start()
    assert _supervise(threading.Event(), (child,)) is True
    assert log.read_text().count("started") == CHILD_RESTARTS_MAX + 1
