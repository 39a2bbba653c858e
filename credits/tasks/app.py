"""The Celery app of credits, configured from :mod:`credits.tasks.celeryconfig`.

Nothing here connects to anything at import: the ledger client is made lazily
in each worker process (:mod:`credits.tasks.runtime`), and a worker or beat
started with no broker configured stops at once with a message that names the
variables to set, instead of retrying ``amqp://localhost`` forever.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Final

from celery import Celery, Task, states
from celery.exceptions import ImproperlyConfigured
from celery.signals import beat_init, celeryd_init, worker_ready

from credits import sentinel
from credits.errors import StoreUnavailableError
from credits.tasks import outbox
from credits.tasks.settings import WorkerSettings

logger = logging.getLogger(__name__)

CONFIG_MODULE = "credits.tasks.celeryconfig"
NO_BROKER = (
    "credits: no Celery broker configured. Set CREDITS_REDIS_URL (the ledger's Redis, "
    "also used as broker and result backend), or CELERY_BROKER_URL and "
    "CELERY_RESULT_BACKEND; `credits up` starts a local Redis and sets them for you."
)
NO_STORE = (
    "credits: the worker has a broker but no ledger store. Set CREDITS_REDIS_URL "
    "(or UPSTASH_REDIS_URL and UPSTASH_REDIS_TOKEN)."
)
FINAL_STATES: Final = frozenset({states.SUCCESS, states.FAILURE})


class CreditsTask(Task):  # type: ignore[type-arg]
    """The base of every credits task.

    Refuses to publish with no broker configured. A task declared with
    ``durable=True`` (settle, release) is written to the outbox before it is
    published and struck off when it has ended, so a message the Redis
    transport loses is sent again (:mod:`credits.tasks.outbox`).
    """

    durable: ClassVar[bool] = False

    def apply_async(
        self,
        args: Any = None,
        kwargs: Any = None,
        task_id: str | None = None,
        *more: Any,
        **options: Any,
    ) -> Any:
        if not self.app.conf.broker_url:
            raise ImproperlyConfigured(NO_BROKER)
        if self.durable and outbox.enabled(self.app) and not self.app.conf.task_always_eager:
            task_id = outbox.record(self, args, kwargs, task_id, options)
        return super().apply_async(args, kwargs, task_id, *more, **options)

    def after_return(
        self,
        status: str,
        retval: Any,
        task_id: str,
        args: Any,
        kwargs: Any,
        einfo: Any,
    ) -> None:
        # Called for SUCCESS and FAILURE, never for RETRY (whose new message has its own record).
        if self.durable and status in FINAL_STATES and outbox.enabled(self.app):
            outbox.forget(self.app, task_id)


app = Celery("credits", task_cls=CreditsTask)
app.config_from_object(CONFIG_MODULE)
app.steps["consumer"].add(outbox.RedriveStep)


@app.on_after_configure.connect
def _translated_result_backend(sender: Celery, source: Any, **_: Any) -> None:
    """Point the backend at the translated URL when CELERY_RESULT_BACKEND is redis+sentinel://.

    Celery reads that variable before ``result_backend``, and would pass the
    untranslated form to its Redis backend; ``backend_cls`` comes first of all.
    """
    if sentinel.is_sentinel_url(sender.conf.result_backend):
        sender.backend_cls = source.get("result_backend")


# Celery logs and swallows an Exception raised by a signal handler, so these
# stop the process with SystemExit: exit status 1 and the message on stderr.


@celeryd_init.connect
def _refuse_worker_without_config(**_: Any) -> None:
    if not app.conf.broker_url:
        raise SystemExit(NO_BROKER)
    if not WorkerSettings().store_url():
        raise SystemExit(NO_STORE)


@beat_init.connect
def _refuse_beat_without_broker(**_: Any) -> None:
    if not app.conf.broker_url:
        raise SystemExit(NO_BROKER)


@worker_ready.connect
def _check_store_keeps_money(**_: Any) -> None:
    """Log every warning of :meth:`Credits.check_store` (eviction, persistence) as an error.

    The same check as the client's, so the worker and ``credits`` never
    disagree about whether a store is fit for money. An unreachable store is
    logged and left to the tasks' retries.
    """
    from credits.tasks.runtime import ledger

    try:
        warnings = ledger().check_store()
    except StoreUnavailableError as exc:
        logger.error("cannot check the ledger store: %s", exc)
        return
    for warning in warnings:
        logger.error("the ledger store may lose money: %s", warning)
