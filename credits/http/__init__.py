"""The HTTP API of credits (the ``http`` extra): ``credits serve``, or ``uvicorn credits.http:app``.

JSON under ``/v1`` for apps in any language, an admin page at ``/admin``,
Prometheus metrics at ``/metrics``. :func:`credits.http.app.create_app` builds
it; ``app`` (what ``uvicorn credits.http:app`` serves) is made on first access,
so importing this package (``credits keys`` does, for the key store) needs
neither FastAPI nor a configured Redis.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "app":
        from credits.http.app import create_app

        app = create_app()
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
