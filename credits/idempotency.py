"""What an idempotency key is remembered with: a canonical digest of the call.

The same key with equal parameters must give the same digest whatever the
order in which a caller built its metadata, and different parameters a
different one; so the digest is of canonical JSON (sorted keys, no spaces).
"""

from __future__ import annotations

import hashlib
import json

FINGERPRINT_HEX_CHARS = 32


def fingerprint(*parts: object) -> str:
    """A digest of an operation's name and parameters (metadata as its canonical JSON)."""
    encoded = json.dumps(parts, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:FINGERPRINT_HEX_CHARS]
