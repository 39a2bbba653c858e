"""Webhooks: the ledger's events POSTed to apps' endpoints, signed, in order per user.

* :mod:`~credits.webhooks.registry`: endpoints (URL, secret, event filter) in Redis;
* :mod:`~credits.webhooks.ssrf`: which URLs may be called at all (a webhook URL is
  user-controlled input, so private and loopback addresses are refused);
* :mod:`~credits.webhooks.settings`: ``CREDITS_WEBHOOK_*`` and the retention;
* :mod:`~credits.webhooks.schedule`: the retry schedule and when a delivery is parked;
* :mod:`~credits.webhooks.lanes`: delivery positions per (endpoint, bucket), pauses;
* :mod:`~credits.webhooks.locks`: one run per endpoint, one tick at a time;
* :mod:`~credits.webhooks.sender`: one signed POST (Standard Webhooks, ``httpx``);
* :mod:`~credits.webhooks.delivery`: one endpoint's delivery run;
* :mod:`~credits.webhooks.dispatch`: the periodic tick (which endpoints have work,
  trimming the outbox, the ``written`` counter);
* :mod:`~credits.webhooks.failed`, :mod:`~credits.webhooks.redeliver`: parked
  deliveries, listed and retried;
* :mod:`~credits.webhooks.stats`: the counters in Redis, for ``/metrics``.

Only the registry and the URL checks are imported by the clients; the rest
needs the ``webhooks`` extra (``httpx``, ``standardwebhooks``) and runs in the
Celery worker (``credits.tasks.deliver_events``) and the CLI.
"""
