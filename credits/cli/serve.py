"""``credits serve``: the HTTP API and admin page (the ``http`` extra), in the foreground.

It serves the same ledger the other commands find (``CREDITS_REDIS_URL``, a
running ``credits up``, or the embedded server of the data dir). For several
worker processes run uvicorn itself: ``uvicorn credits.http:app --workers 4``
with ``CREDITS_REDIS_URL`` set.
"""

from __future__ import annotations

from typing import Annotated, Final

import typer

from credits.cli.app import (
    EXIT_INVALID,
    EXIT_NO_REDIS,
    DataDirOption,
    app,
    fail,
    redis_url_of,
    say,
)
from credits.cli.app import data_dir as resolve_data_dir
from credits.redis_server import port_is_free
from credits.settings import CreditsSettings

HOST_DEFAULT: Final = "127.0.0.1"
PORT_DEFAULT: Final = 8000
MISSING_EXTRA: Final = "credits serve needs the 'http' extra: pip install 'credits[http]'"


def api_url(host: str, port: int) -> str:
    return f"http://{host}:{port}"


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = HOST_DEFAULT,
    port: Annotated[int, typer.Option(min=1, max=65_535, help="Port to listen on")] = PORT_DEFAULT,
    data_dir: DataDirOption = None,
) -> None:
    """Serve the HTTP API (/v1, /openapi.json, /metrics) and the admin page (/admin)."""
    try:
        import uvicorn

        from credits.http.app import create_app
    except ImportError as exc:
        raise fail(MISSING_EXTRA, f" ({exc.name} is missing)", code=EXIT_INVALID) from None
    url = None
    if CreditsSettings().redis_url is None:
        url = redis_url_of(resolve_data_dir(data_dir))
        if url is None:
            raise fail(
                "No Redis: set CREDITS_REDIS_URL, or start one with `credits up`.",
                code=EXIT_NO_REDIS,
            )
    if not port_is_free(port, host):
        raise fail(f"{host}:{port} is in use: pass --port with a free one.", code=EXIT_INVALID)
    base = api_url(host, port)
    say("HTTP API ", base, "/v1   OpenAPI ", base, "/openapi.json   admin ", base, "/admin")
    uvicorn.run(create_app(url), host=host, port=port, log_level="info", access_log=False)
