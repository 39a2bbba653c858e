"""Configuration of durability past one server: Sentinel URLs and ``wait_replicas``.

No server is needed: clients connect lazily, and these are checks of what a
client, a worker and Celery are configured with. The servers themselves are
in ``test_replication.py`` and ``test_sentinel_tasks.py``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from credits import AsyncCredits, Credits
from credits.errors import InvalidInputError
from credits.sentinel import (
    SentinelURL,
    from_kombu_url,
    kombu_options,
    kombu_url,
    parse_sentinel_url,
)
from credits.settings import redact_url, resolve_redis_url
from credits.tasks.settings import CeleryEndpoint

URL = "redis+sentinel://s1:26380,s2,[::1]:26382/credits/3"


def test_a_sentinel_url_names_sentinels_service_and_db() -> None:
    assert parse_sentinel_url(URL) == SentinelURL(
        sentinels=(("s1", 26380), ("s2", 26379), ("::1", 26382)), service="credits", db=3
    )
    parsed = parse_sentinel_url("redis+sentinel://u:p%40ss@h:1/svc")
    assert (parsed.username, parsed.password, parsed.db) == ("u", "p@ss", 0)


@pytest.mark.parametrize(
    "bad",
    [
        "redis+sentinel://h:1",  # no service
        "redis+sentinel://h:1/",  # empty service
        "redis+sentinel://h:1/svc/x",  # db not a number
        "redis+sentinel://h:99999/svc",  # port out of range
        "redis+sentinel://h:1,,h2:2/svc",  # an empty sentinel
        "redis+sentinel://h:1/svc?ssl=true",  # no query
        "redis+sentinel://h:1/sv c",
    ],
)
def test_a_malformed_sentinel_url_is_refused_without_its_password(bad: str) -> None:
    with_password = bad.replace("://", "://:s3cret@", 1)
    with pytest.raises(InvalidInputError) as refused:
        Credits(with_password)
    assert "s3cret" not in str(refused.value)


def test_the_token_is_the_primarys_password_and_never_shown() -> None:
    url = resolve_redis_url("redis+sentinel://h:1,h:2/svc/0", "t0k/en")
    assert parse_sentinel_url(url).password == "t0k/en"
    assert "t0k" not in redact_url(url)
    assert redact_url(url) == "redis+sentinel://:***@h:1,h:2/svc/0"
    client = Credits(url)
    assert "t0k" not in repr(client)
    client.close()


def test_sentinel_and_cluster_do_not_mix() -> None:
    with pytest.raises(InvalidInputError, match="Cluster"):
        Credits(URL, cluster=True)


def test_kombu_spelling_round_trips() -> None:
    url = "redis+sentinel://:pw@s1:26380,s2:26381/credits/3"
    assert kombu_url(url) == "sentinel://:pw@s1:26380/3;sentinel://:pw@s2:26381/3"
    options = kombu_options(url, 2.0)
    assert options["master_name"] == "credits"
    assert options["sentinel_kwargs"] == {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}
    assert from_kombu_url(kombu_url(url), "credits") == url
    assert CeleryEndpoint.of("redis://h:1/0") == CeleryEndpoint("redis://h:1/0")
    assert CeleryEndpoint.of(url).sentinel


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"wait_replicas": -1}, "wait_replicas"),
        ({"wait_replicas": True}, "wait_replicas"),
        ({"wait_replicas": "1"}, "wait_replicas"),
        ({"wait_replicas": 17}, "wait_replicas"),
        ({"wait_replicas": 1, "wait_timeout_ms": 0}, "wait_timeout_ms"),
        ({"wait_replicas": 1, "wait_timeout_ms": 1.5}, "wait_timeout_ms"),
        ({"wait_replicas": 1, "wait_timeout_ms": 10**6}, "wait_timeout_ms"),
        ({"wait_replicas": 1, "wait_timeout_ms": 2000, "socket_timeout": 2}, "socket timeout"),
    ],
)
def test_bad_wait_settings_are_refused_at_construction(
    kwargs: dict[str, object], word: str
) -> None:
    for client_class in (Credits, AsyncCredits):
        with pytest.raises(InvalidInputError, match=word):
            client_class("redis://127.0.0.1:1/0", **kwargs)  # type: ignore[arg-type]


def test_wait_replicas_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITS_REDIS_URL", URL)
    monkeypatch.setenv("CREDITS_WAIT_REPLICAS", "2")
    monkeypatch.setenv("CREDITS_WAIT_TIMEOUT_MS", "250")
    with Credits.from_env() as client:
        assert (client.options.wait.replicas, client.options.wait.timeout_ms) == (2, 250)
        assert "wait_replicas=2" in repr(client)
    with Credits(URL, wait_replicas=0) as client:  # an argument wins over its variable
        assert client.options.wait.replicas == 0


def test_celery_is_configured_with_kombus_sentinel_spelling() -> None:
    """Celery reads CELERY_BROKER_URL itself: what it connects with must still be translated."""
    script = """
from credits.tasks import app
from credits.tasks import outbox
c = app.conf
print(c.broker_write_url)
print(c.broker_read_url)
print(c.broker_transport_options["master_name"], c.broker_channel_error_retry)
print(c.result_backend_transport_options["master_name"])
print(type(app.backend).__name__, app.backend.as_uri())
print(outbox.enabled(app), outbox._broker_redis_url(app))
"""
    env = {
        "PATH": "/usr/bin:/bin",
        "CREDITS_REDIS_URL": "redis+sentinel://127.0.0.1:1,127.0.0.1:2/svc/0",
        "CELERY_BROKER_URL": "redis+sentinel://127.0.0.1:1,127.0.0.1:2/svc/1",
        "CELERY_RESULT_BACKEND": "redis+sentinel://127.0.0.1:1,127.0.0.1:2/svc/2",
    }
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == [
        "sentinel://127.0.0.1:1/1;sentinel://127.0.0.1:2/1",
        "sentinel://127.0.0.1:1/1;sentinel://127.0.0.1:2/1",
        "svc True",
        "svc",
        "SentinelBackend sentinel://127.0.0.1:1/2;sentinel://127.0.0.1:2/2",
        "True redis+sentinel://127.0.0.1:1,127.0.0.1:2/svc/1",
    ]
