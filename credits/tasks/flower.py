"""Flower for credits, with ``/metrics`` behind the same basic auth as the UI.

Run it with ``python -m credits.tasks.flower [flower options]`` (``credits up`` does):
it is ``celery -A credits.tasks flower`` plus one change. Flower 2.x serves
``/metrics`` without authentication on purpose (mher/flower#1129, so that
Prometheus can scrape it), which would publish task names and rates to anyone
who can reach the port. Here, when ``FLOWER_BASIC_AUTH`` (``user:password``,
comma-separated for several) or ``--basic-auth`` is set, ``/metrics`` asks for
it too; point Prometheus at it with ``basic_auth`` in its scrape config.
``/healthcheck`` stays open for load balancers.

Flower reads its own ``FLOWER_*`` variables (``FLOWER_BASIC_AUTH``,
``FLOWER_PORT``, ``FLOWER_ADDRESS``, ...); this module reads none.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Sequence
from typing import Any

import tornado.web

METRICS_PATH = r"/metrics"


def protect_metrics() -> None:
    """Make Flower's ``/metrics`` handler require the configured authentication.

    Must run before Flower builds its application (it copies the handler list then).
    """
    from flower import urls
    from flower.views.monitor import Metrics

    class AuthenticatedMetrics(Metrics):  # type: ignore[misc]
        @tornado.web.authenticated
        def get(self) -> Awaitable[None]:
            result: Awaitable[None] = super().get()
            return result

    for index, handler in enumerate(urls.handlers):
        if isinstance(handler, tuple) and handler[0] == METRICS_PATH:
            urls.handlers[index] = (METRICS_PATH, AuthenticatedMetrics, *handler[2:])


def main(argv: Sequence[str] | None = None) -> Any:
    """``celery -A credits.tasks flower`` with ``argv`` as Flower's options.

    Refuses, as the worker does, when no broker is configured: Celery would
    otherwise connect to whatever AMQP server listens on localhost.
    """
    from celery.bin.celery import main as celery_main

    from credits.tasks.app import NO_BROKER, app

    if not app.conf.broker_url:
        sys.stderr.write(NO_BROKER + "\n")
        return 2
    protect_metrics()
    options = list(sys.argv[1:] if argv is None else argv)
    sys.argv = ["celery", "-A", "credits.tasks", "flower", *options]
    return celery_main()


if __name__ == "__main__":
    sys.exit(main())
