"""An outbox for the money tasks: what the Redis transport loses, a worker sends again.

Why: kombu's Redis transport takes a message off the queue with ``BRPOP`` and
records it in its ``unacked`` hash with a second command. A worker killed
between the two (SIGKILL, the OOM killer), or a warm shutdown that drops a
``BRPOP`` reply still in its socket, loses that message for good
(celery/kombu#305). Late acks and the visibility timeout only cover tasks that
made it into ``unacked``. A settle whose worker was killed must still be
delivered; so we keep our own record.

How:

* Publishing a durable task (settle, release) first writes its call to the
  outbox hash, and to a sorted set the time it may start (now + countdown).
* When the task ends (success, or a failure that will not be retried) the
  worker deletes the record.
* Every worker looks every few seconds for records that could have started
  ``redrive_after_s`` ago (1.5 of *its* visibility timeouts: by then kombu's
  own restore would have brought back an unacked message). One Lua call
  claims them, moving each one's time forward so that the next send waits
  twice as long, and so that two workers never send the same record at once;
  each claimed call is published again with the same task id, so
  ``result.get()`` still works.

A record re-sent while its first message was only slow (a backlog longer than
``redrive_after_s``) means one more delivery, which the ledger turns into a
no-op: a hold closes exactly once. After ``REDRIVES_MAX`` sends a record is
dropped with an error in the log; the hold then expires and its credits return.

Keys live in the broker's Redis, beside Celery's own queues (on a Sentinel
broker, its current primary). With a broker that is not Redis the outbox is
off (such brokers keep unacked messages).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import redis
from celery import Celery, Task, bootsteps
from celery.signals import worker_process_init
from kombu.exceptions import OperationalError

from credits import sentinel

logger = logging.getLogger(__name__)

OUTBOX_KEY: Final = "credits:outbox"  # hash: task id -> JSON call
OUTBOX_DUE_KEY: Final = "credits:outbox:due"  # zset: task id -> Unix s it may start
OUTBOX_SENT_KEY: Final = "credits:outbox:sent"  # hash: task id -> times sent again

REDRIVE_BATCH_MAX: Final = 100
REDRIVES_MAX: Final = 8  # then 1.5 VT x 2**8 has passed: over six hours, by default
REDRIVE_AFTER_VISIBILITY_TIMEOUTS: Final = 1.5
REDRIVE_INTERVAL_S_MAX: Final = 10.0
REDRIVE_INTERVAL_S_MIN: Final = 1.0
VISIBILITY_TIMEOUT_S_KOMBU_DEFAULT: Final = 3600
SOCKET_TIMEOUT_S: Final = 5.0
REDIS_SCHEMES: Final = ("redis://", "rediss://", "unix://", "sentinel://", "redis+sentinel://")
ROUTING_OPTIONS: Final = ("queue", "exchange", "routing_key", "priority")

# KEYS: due zset (task id -> Unix s it may start), outbox hash, sent-count hash
# ARGV: now_s, batch, redrive_after_s, most sends
# Claims records that could have started redrive_after_s ago; the n-th send moves
# the record to now + redrive_after_s * (2^n - 1), so the next one waits 2^n times.
# Returns {id, call, sends, ...}; sends is -1 for a record dropped after the last send.
CLAIM_LUA: Final = """
local due, outbox, sent = KEYS[1], KEYS[2], KEYS[3]
local now, after, most = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[4])
local ids = redis.call('ZRANGEBYSCORE', due, '-inf', now - after, 'LIMIT', 0, tonumber(ARGV[2]))
local claimed = {}
for _, id in ipairs(ids) do
  local call = redis.call('HGET', outbox, id)
  if not call then
    redis.call('ZREM', due, id)
    redis.call('HDEL', sent, id)
  else
    local sends = redis.call('HINCRBY', sent, id, 1)
    if sends > most then
      redis.call('ZREM', due, id)
      redis.call('HDEL', outbox, id)
      redis.call('HDEL', sent, id)
      sends = -1
    else
      redis.call('ZADD', due, string.format('%.3f', now + after * (2 ^ sends - 1)), id)
    end
    table.insert(claimed, id)
    table.insert(claimed, call)
    table.insert(claimed, sends)
  end
end
return claimed
"""

_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}


def enabled(app: Celery) -> bool:
    url = app.conf.broker_url
    return isinstance(url, str) and url.startswith(REDIS_SCHEMES)


def _broker_redis_url(app: Celery) -> str:
    """The broker as a redis-py URL: Celery's write URL, a Sentinel one in our own spelling."""
    url = str(app.conf.broker_write_url or app.conf.broker_url)
    if url.startswith("sentinel://"):
        options = app.conf.broker_transport_options or {}
        return sentinel.from_kombu_url(url, str(options.get("master_name", "")))
    return url


def _client(app: Celery) -> redis.Redis:
    url = _broker_redis_url(app)
    with _lock:
        client = _clients.get(url)
        if client is None:
            if sentinel.is_sentinel_url(url):
                client = sentinel.blocking_primary(url, SOCKET_TIMEOUT_S, decode_responses=True)
            else:
                client = redis.Redis.from_url(
                    url,
                    decode_responses=True,
                    socket_timeout=SOCKET_TIMEOUT_S,
                    socket_connect_timeout=SOCKET_TIMEOUT_S,
                )
            _clients[url] = client
        return client


@worker_process_init.connect
def _forget_inherited_clients(**_: Any) -> None:
    with _lock:
        _clients.clear()  # not closed: the sockets belong to the parent


def visibility_timeout_s(app: Celery) -> float:
    options = app.conf.broker_transport_options or {}
    return float(options.get("visibility_timeout", VISIBILITY_TIMEOUT_S_KOMBU_DEFAULT))


def redrive_after_s(app: Celery) -> float:
    """Seconds after it could have started that a still-unfinished call is sent again."""
    return REDRIVE_AFTER_VISIBILITY_TIMEOUTS * visibility_timeout_s(app)


def redrive_interval_s(app: Celery) -> float:
    """How often each worker looks for due records."""
    return max(REDRIVE_INTERVAL_S_MIN, min(REDRIVE_INTERVAL_S_MAX, visibility_timeout_s(app) / 6))


def _plain(value: Any) -> Any:
    """A kombu Queue or Exchange as its name, so the routing survives JSON."""
    return getattr(value, "name", value)


def _delay_s(options: Mapping[str, Any]) -> float:
    countdown = options.get("countdown")
    if isinstance(countdown, int | float):
        return max(0.0, float(countdown))
    eta = options.get("eta")
    if isinstance(eta, datetime):
        when = eta if eta.tzinfo else eta.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - time.time())
    return 0.0


def record(
    task: Task,  # type: ignore[type-arg]
    args: Any,
    kwargs: Any,
    task_id: str | None,
    options: Mapping[str, Any],
) -> str:
    """Write the call to the outbox before it is published; returns the task id to use."""
    task_id = task_id or str(uuid.uuid4())
    routing = {k: _plain(options[k]) for k in ROUTING_OPTIONS if options.get(k) is not None}
    call = json.dumps(
        {"task": task.name, "args": list(args or ()), "kwargs": dict(kwargs or {}), **routing}
    )
    starts_s = time.time() + _delay_s(options)
    pipe = _client(task.app).pipeline(transaction=True)
    pipe.hset(OUTBOX_KEY, task_id, call)
    pipe.zadd(OUTBOX_DUE_KEY, {task_id: starts_s})
    pipe.hdel(OUTBOX_SENT_KEY, task_id)
    pipe.execute()
    return task_id


def forget(app: Celery, task_id: str) -> None:
    """Drop the record of a task that has ended; a failure here only costs a harmless resend."""
    try:
        pipe = _client(app).pipeline(transaction=True)
        pipe.hdel(OUTBOX_KEY, task_id)
        pipe.zrem(OUTBOX_DUE_KEY, task_id)
        pipe.hdel(OUTBOX_SENT_KEY, task_id)
        pipe.execute()
    except redis.RedisError as exc:
        logger.warning("could not clear outbox record %s (it will be sent again): %s", task_id, exc)


def redrive(app: Celery) -> int:
    """Send again every due record; returns how many were sent."""
    client = _client(app)
    reply = client.eval(
        CLAIM_LUA,
        3,
        OUTBOX_DUE_KEY,
        OUTBOX_KEY,
        OUTBOX_SENT_KEY,
        f"{time.time():.3f}",
        REDRIVE_BATCH_MAX,
        redrive_after_s(app),
        REDRIVES_MAX,
    )
    sent = 0
    for i in range(0, len(reply), 3):
        task_id, call, sends = reply[i], json.loads(reply[i + 1]), int(reply[i + 2])
        if sends < 0:
            logger.error(
                "outbox: gave up on %s[%s] after %d sends", call.get("task"), task_id, REDRIVES_MAX
            )
            continue
        task = app.tasks.get(call.pop("task", ""))
        if task is None:
            logger.error("outbox: unknown task in record %s: %r", task_id, call)
            continue
        args, kwargs = call.pop("args", []), call.pop("kwargs", {})
        # The base class's apply_async: this send must not reset the record's backoff.
        Task.apply_async(task, args, kwargs, task_id=task_id, **call)
        logger.warning("outbox: sent %s[%s] again (send %d)", task.name, task_id, sends)
        sent += 1
    return sent


class RedriveStep(bootsteps.StartStopStep):
    """A consumer step: every few seconds, this worker sends due outbox records again."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._timer_ref: Any = None

    def start(self, parent: Any) -> None:
        app = parent.app
        if not enabled(app):
            return
        self._timer_ref = parent.timer.call_repeatedly(
            redrive_interval_s(app), _redrive_logged, (app,), priority=10
        )

    def stop(self, parent: Any) -> None:
        if self._timer_ref is not None:
            self._timer_ref.cancel()
            self._timer_ref = None

    shutdown = stop


def _redrive_logged(app: Celery) -> None:
    logger.debug("outbox: looking for due records")
    try:
        redrive(app)
    except (redis.RedisError, OSError, OperationalError) as exc:
        logger.warning("outbox: redrive skipped, broker unreachable: %s", exc)
