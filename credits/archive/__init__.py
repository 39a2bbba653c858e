"""The archive tier: where a user's old events go once Redis need not hold them.

Redis keeps the hot ledger (every event of the last ``CREDITS_HOT_DAYS`` days, at
least); the archive keeps everything older, in a database made for years of
history that finance teams can query (``docs/HISTORY.md`` documents its tables).
``CREDITS_ARCHIVE_URL`` chooses it: ``postgresql://...`` (psycopg 3) or
``sqlite:///PATH`` (the embedded default). Events move by copy-then-trim
(:mod:`credits.archive.archiver`), and reads span both tiers as if nothing moved
(:mod:`credits.archive.reads`).
"""

from __future__ import annotations

from credits.archive.base import Archive, open_archive

__all__ = ["Archive", "open_archive"]
