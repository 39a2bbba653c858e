"""Celery configuration of credits (``credits.tasks.app`` loads this module).

It lives inside the package, not as a top-level ``celeryconfig`` module:
that is Celery's default config name, so a top-level one would shadow, or be
shadowed by, another app's.

Every value comes from :class:`credits.tasks.settings.WorkerSettings`, so the
environment is read in one place. Run the parts with::

    celery -A credits.tasks worker -l info          # the workers (as many as you like)
    celery -A credits.tasks beat -l info            # the schedule: exactly ONE of these
    python -m credits.tasks.flower --port=5555      # Flower, /metrics behind FLOWER_BASIC_AUTH

or all of them at once, with an embedded Redis, with ``credits up``.

Decisions (also in the README):

* Broker and result backend are ``CELERY_BROKER_URL`` / ``CELERY_RESULT_BACKEND``
  and both default to the ledger's ``CREDITS_REDIS_URL``. With none of them set
  the worker refuses to start with a clear message (``credits.tasks.app``).
* A ``redis+sentinel://`` URL in any of them is translated here for kombu's
  Sentinel transport and Celery's Sentinel backend (``sentinel://...;...``
  plus ``master_name``). Celery itself reads ``CELERY_BROKER_URL`` and
  ``CELERY_RESULT_BACKEND`` from the environment before this module's values,
  so the broker's read and write URLs are set here too (Celery connects with
  those), and ``credits.tasks.app`` points the backend at the translated URL.
  A consumer whose channel meets a demoted primary (``READONLY``) reconnects
  (``broker_channel_error_retry``), and the sentinels lead it to the new one.
* Money tasks (settle, release) acknowledge late and are rejected back to the
  queue when their worker process dies, so a task is never lost; the ledger
  makes a second delivery harmless (a reservation closes exactly once).
* Visibility timeout (``CREDITS_BROKER_VISIBILITY_TIMEOUT_S``, 60 s): with the
  Redis transport, a task taken by a worker that is then killed outright
  (SIGKILL, OOM, lost host) stays in the ``unacked`` hash until this timeout
  passes; then any live worker puts it back on the queue. The contract asks
  for redelivery within two minutes: 60 s plus a restore pass every 5 s does it.
  The price of a short timeout: a task still held by a live worker after 60 s
  is delivered a second time. So everything that acknowledges late must finish,
  or wait, for less than that, and those numbers are derived from the timeout
  (``credits.tasks.settings``): money tasks take milliseconds and are killed at
  half of it (30 s); retry countdowns stop at half of it (30 s). Do not
  ``apply_async(countdown=...)`` past the timeout: it still runs, just more
  than once (harmless here, wasteful anywhere).
* The visibility timeout has a gap: kombu takes a message off the queue
  (BRPOP) and records it as unacked in a second command, so a worker killed
  between the two loses it (celery/kombu#305). Settle and release therefore
  go through an outbox (``credits.tasks.outbox``): recorded in Redis before
  they are published, struck off when done, and sent again by any live worker
  if still there 1.5 visibility timeouts (90 s) after they could have started.
* The upkeep tasks (sweep, reconcile) acknowledge early instead: they are
  periodic, so a run lost with its worker is simply done by the next tick, and
  a long reconcile is never redelivered half-way through.
* Beat must run exactly once: two beats send every periodic task twice (still
  correct here, both tasks being idempotent, but twice the load). For beat in
  more than one place, install the ``redbeat`` extra and run
  ``celery -A credits.tasks beat -S redbeat.RedBeatScheduler``: RedBeat keeps
  the schedule in Redis and holds a lock so only one beat ticks at a time
  (``redbeat_*`` below; a standby takes over when the lock expires).
"""

from __future__ import annotations

import ssl
from typing import Any

from credits.tasks.settings import WorkerSettings
from credits.webhooks.settings import WebhookSettings

_settings = WorkerSettings()
_webhooks = WebhookSettings()

# ---------------------------------------------------------------- broker and results

_broker = _settings.broker_endpoint()
_backend = _settings.backend_endpoint()
broker_url = _broker.url
result_backend = _backend.url
# For Sentinel: broker_read_url, broker_write_url, broker_channel_error_retry.
globals().update(_broker.broker_extras())
# Keep retrying to reach the broker at start-up (and silence Celery 5's warning).
broker_connection_retry_on_startup = True

# Seconds. See the module docstring for why 60.
_visibility_timeout_s = _settings.broker_visibility_timeout_s
broker_transport_options: dict[str, Any] = {
    "visibility_timeout": _visibility_timeout_s,
    # kombu looks for timed-out unacked tasks every interval, scanning Redis on
    # every `throttle`-th look; 5 s x 1 keeps redelivery close to the timeout.
    "unacked_restore_interval": max(1, min(5, _visibility_timeout_s // 4)),
    "unacked_restore_throttle": 1,
    # The restore lock; if a worker dies holding it, restores wait this long.
    "unacked_mutex_expire": max(5, _visibility_timeout_s // 2),
    "socket_connect_timeout": 5,
    **_broker.transport_options,
}
result_backend_transport_options: dict[str, Any] = {
    "socket_connect_timeout": 5,
    **_backend.transport_options,
}
# rediss:// (TLS, e.g. Upstash) needs the certificate policy spelled out.
if broker_url and broker_url.startswith("rediss://"):
    broker_use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
if result_backend and result_backend.startswith("rediss://"):
    redis_backend_use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}

# A named queue, so the ledger can share a broker with other apps.
task_default_queue = "credits"

# ---------------------------------------------------------------- serialization

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]
result_expires = 24 * 60 * 60  # seconds: a day to read what a task returned
timezone = "UTC"
enable_utc = True

# ---------------------------------------------------------------- delivery

task_acks_late = True
task_reject_on_worker_lost = True
# A failed task (a business error, a time limit) is acknowledged, not redelivered.
task_acks_on_failure = True
task_acks_on_timeout = True
# One task in hand per process: nothing waits in a dead worker's buffer.
worker_prefetch_multiplier = 1
# On a lost broker connection, stop running late-ack tasks: they come back anyway.
worker_cancel_long_running_tasks_on_connection_loss = True
# Seconds; money tasks take milliseconds. Derived from the visibility timeout.
task_soft_time_limit = _settings.money_soft_time_limit_s
task_time_limit = _settings.money_time_limit_s

# ---------------------------------------------------------------- Flower

worker_send_task_events = True
task_send_sent_event = True

# ---------------------------------------------------------------- beat

beat_schedule = {
    "expire-reservations": {
        "task": "credits.tasks.expire_reservations",
        "schedule": _settings.sweep_interval_s,
        # A tick nobody ran before the next one is dropped, not piled up.
        "options": {"expires": _settings.sweep_interval_s},
    },
    "expire-lots": {
        "task": "credits.tasks.expire_lots",
        "schedule": _settings.sweep_interval_s,
        "options": {"expires": _settings.sweep_interval_s},
    },
    "renew-allowances": {
        "task": "credits.tasks.renew_allowances",
        "schedule": _settings.sweep_interval_s,
        "options": {"expires": _settings.sweep_interval_s},
    },
    # Webhook delivery: the dispatcher tick (credits.tasks.delivery).
    "deliver-events": {
        "task": "credits.tasks.deliver_events",
        "schedule": _webhooks.webhook_interval_s,
        "options": {"expires": _webhooks.webhook_interval_s},
    },
    # The archive tier: copy-then-trim of events older than CREDITS_HOT_DAYS.
    "archive-events": {
        "task": "credits.tasks.archive_events",
        "schedule": _settings.archive_interval_s,
        "options": {"expires": _settings.archive_interval_s},
    },
    "reconcile-balances": {
        "task": "credits.tasks.reconcile_balances",
        "schedule": _settings.reconcile_interval_s,
        "kwargs": {"fix": True},
        "options": {"expires": _settings.reconcile_interval_s},
    },
}
# beat's own schedule file goes to the data dir (`celery beat` would drop it in the cwd).
beat_scheduler = "credits.tasks.beat:DataDirScheduler"
beat_schedule_filename = str(_settings.beat_schedule_path())
# Seconds beat may sleep; also paces RedBeat's lock refresh.
beat_max_loop_interval = 30

# Used only with `-S redbeat.RedBeatScheduler` (the `redbeat` extra); RedBeat has
# its own Sentinel spelling, which this module does not write (docs/SCALING.md).
redbeat_redis_url = broker_url
redbeat_key_prefix = "credits:redbeat"
redbeat_lock_timeout = 5 * beat_max_loop_interval  # seconds; a standby beat waits this long
