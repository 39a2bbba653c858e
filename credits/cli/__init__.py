"""The ``credits`` command (the ``cli`` extra: Typer and Rich).

Running the system locally (``credits up``, ``credits demo``) and operating the
ledger from a shell. The commands live in :mod:`credits.cli.commands`; the
child processes of ``credits up`` in :mod:`credits.cli.processes`; the four-app
story of ``credits demo`` in :mod:`credits.cli.demo`.
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
