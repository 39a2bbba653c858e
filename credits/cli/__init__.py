"""The ``credits`` command (the ``cli`` extra: Typer and Rich).

Running the system locally (``credits up``, ``credits demo``) and operating the
ledger from a shell. :mod:`credits.cli.app` holds the Typer app and what the
commands share; :mod:`credits.cli.commands` registers the command modules:
``up`` (up, url, demo, flower), ``views`` (balance, history, holds, lots),
``ops`` (grant, release, verify, reconcile), ``plans`` (allowances, limits,
alerts, auto top-up), ``webhooks`` (a sub-app), ``export``, ``keys`` and
``serve``. The
child processes of ``credits up`` are in :mod:`credits.cli.processes`; the
four-app story of ``credits demo`` in :mod:`credits.cli.demo`.
"""

from __future__ import annotations

import sys

MISSING_EXTRA = (
    "credits: the command line needs the 'cli' extra (Typer and Rich): "
    "pip install 'credits[cli]' (or 'credits[all]' for the whole local system)"
)


def main() -> None:
    """The ``credits`` console script; says which extra to install when one is missing."""
    try:
        from credits.cli.commands import app
    except ImportError as exc:
        if exc.name in ("typer", "rich", "click"):
            sys.exit(MISSING_EXTRA)
        raise
    app()
