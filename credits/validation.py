"""Input checks that run before anything is sent to Redis.

Each check raises :class:`~credits.errors.InvalidInputError` with the bound it
enforces, so bad input never reaches a script and the store stays untouched.
``bool`` is refused wherever an ``int`` is expected: ``True`` is not one credit;
other ``int`` subclasses (``IntEnum``) are taken as their plain int value.
Anything that must be sent to Redis as UTF-8 is checked for lone surrogates,
so a hostile string is an ``InvalidInputError``, never an encoding error.
"""

from __future__ import annotations

import json
import math
import re
from datetime import timedelta
from typing import Any

from credits import limits
from credits.errors import InvalidInputError


def check_user_id(user_id: object) -> str:
    return _check_name("user_id", user_id, limits.USER_ID_CHARS_MAX)


def check_action(action: object) -> str:
    return _check_name("action", action, limits.ACTION_CHARS_MAX)


def _check_name(name: str, value: object, chars_max: int) -> str:
    """A name stored in keys or the log: 1 to ``chars_max`` characters, printable, UTF-8."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a str, got {type(value).__name__}")
    if not 1 <= len(value) <= chars_max:
        raise InvalidInputError(f"{name} must be 1 to {chars_max} characters, got {len(value)}")
    _refuse_control_characters(name, value)
    _refuse_unencodable(name, value)
    return value


def exact_int(value: object, name: str) -> int:
    """``value`` as a plain int: an int or an int subclass other than bool."""
    if isinstance(value, bool) or not isinstance(value, int):
        shown = repr(value) if isinstance(value, int | float | str) else type(value).__name__
        raise InvalidInputError(f"{name} must be an int, got {type(value).__name__} {shown[:64]}")
    return int(value)


def check_amount(amount: object, name: str = "amount", minimum: int = 1) -> int:
    value = exact_int(amount, name)
    if not minimum <= value <= limits.AMOUNT_MAX:
        raise InvalidInputError(f"{name} must be in [{minimum}, {limits.AMOUNT_MAX}], got {value}")
    return value


def check_idempotency_key(key: object) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str):
        raise InvalidInputError(f"idempotency_key must be a str, got {type(key).__name__}")
    if not 1 <= len(key) <= limits.IDEMPOTENCY_KEY_CHARS_MAX:
        raise InvalidInputError(
            f"idempotency_key must be 1 to {limits.IDEMPOTENCY_KEY_CHARS_MAX} characters"
        )
    _refuse_control_characters("idempotency_key", key)
    _refuse_unencodable("idempotency_key", key)
    return key


def _check_json_shape(value: object, depth: int) -> None:
    """Every dict key a str, nesting at most METADATA_DEPTH_MAX, before any encoding.

    Checked by hand because ``json.dumps`` turns ``{1: "a", "1": "b"}`` into two
    equal keys (losing a value) and recurses ~1,000 levels before failing.
    """
    if isinstance(value, dict | list | tuple):
        if depth >= limits.METADATA_DEPTH_MAX:
            raise InvalidInputError(
                f"metadata nests deeper than {limits.METADATA_DEPTH_MAX} levels"
            )
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidInputError(
                        f"metadata keys must be str, got {type(key).__name__} {key!r:.40}"
                    )
                _check_json_shape(item, depth + 1)
        else:
            for item in value:
                _check_json_shape(item, depth + 1)


def encode_metadata(metadata: object) -> str:
    """Metadata as canonical compact JSON ('' for none), at most METADATA_BYTES_MAX bytes.

    Keys are sorted, so equal metadata built in another order is stored, and
    fingerprinted, alike.
    """
    if metadata is None:
        return ""
    if not isinstance(metadata, dict):
        raise InvalidInputError(f"metadata must be a dict, got {type(metadata).__name__}")
    _check_json_shape(metadata, 0)
    try:
        encoded = json.dumps(
            metadata, separators=(",", ":"), allow_nan=False, ensure_ascii=False, sort_keys=True
        )
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"metadata must be JSON-encodable: {exc}") from None
    size = len(encoded.encode("utf-8", errors="surrogatepass"))
    if size > limits.METADATA_BYTES_MAX:
        raise InvalidInputError(
            f"metadata is {size} bytes encoded, more than {limits.METADATA_BYTES_MAX}"
        )
    _refuse_unencodable("metadata", encoded)
    return encoded if metadata else ""


UNDECODABLE_METADATA_KEY = "undecodable_metadata"


def decode_metadata(encoded: str) -> dict[str, Any]:
    """Stored metadata as a dict; what cannot be read back is kept as its raw text.

    Events written before the depth bound existed may nest beyond what Python's
    JSON reader can parse: they stay readable, their metadata under
    ``undecodable_metadata``, instead of breaking every read of the history.
    """
    if not encoded:
        return {}
    try:
        value = json.loads(encoded)
    except (ValueError, RecursionError):
        return {UNDECODABLE_METADATA_KEY: encoded}
    return value if isinstance(value, dict) else {UNDECODABLE_METADATA_KEY: encoded}


def check_limit(limit: object, maximum: int, name: str = "limit") -> int:
    value = exact_int(limit, name)
    if not 1 <= value <= maximum:
        raise InvalidInputError(f"{name} must be in [1, {maximum}], got {value}")
    return value


def check_time_ms(value: object, name: str) -> int | None:
    if value is None:
        return None
    ms = exact_int(value, name)
    if not 0 <= ms <= limits.AMOUNT_MAX:
        raise InvalidInputError(f"{name} must be in [0, {limits.AMOUNT_MAX}] ms, got {ms}")
    return ms


def ttl_ms(ttl: object) -> int:
    """A hold's time to live: whole seconds (int) or a timedelta, 1 s to 30 days."""
    if isinstance(ttl, timedelta):
        milliseconds = ttl / timedelta(milliseconds=1)
        if not math.isfinite(milliseconds):
            raise InvalidInputError(f"ttl must be finite, got {ttl!r}")
        value = int(milliseconds)
    elif isinstance(ttl, int) and not isinstance(ttl, bool):
        seconds = int(ttl)
        if abs(seconds) > limits.HOLD_TTL_MS_MAX:
            raise InvalidInputError(f"ttl must be at most {limits.HOLD_TTL_MS_MAX // 1000} s")
        value = seconds * 1000
    else:
        raise InvalidInputError(
            f"ttl must be whole seconds (int) or a timedelta, got {type(ttl).__name__}"
        )
    if not limits.HOLD_TTL_MS_MIN <= value <= limits.HOLD_TTL_MS_MAX:
        raise InvalidInputError(
            f"ttl must be from {limits.HOLD_TTL_MS_MIN // 1000} s to "
            f"{limits.HOLD_TTL_MS_MAX // 1000} s, got {value} ms"
        )
    return value


def check_reason(reason: object) -> str | None:
    if reason is None:
        return None
    if not isinstance(reason, str):
        raise InvalidInputError(f"reason must be a str, got {type(reason).__name__}")
    if len(reason) > limits.REASON_CHARS_MAX:
        raise InvalidInputError(f"reason must be at most {limits.REASON_CHARS_MAX} characters")
    _refuse_unencodable("reason", reason)
    return reason


_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")


def _refuse_control_characters(name: str, value: str) -> None:
    # One regex search: a per-character generator cost ~10x more on the hot path.
    if _CONTROL_CHARACTERS.search(value):
        raise InvalidInputError(f"{name} must not contain control characters")


def check_encodable(name: str, value: str) -> str:
    """``value`` if it can be sent to Redis as UTF-8; InvalidInputError otherwise."""
    _refuse_unencodable(name, value)
    return value


def _refuse_unencodable(name: str, value: str) -> None:
    # Lone surrogates cannot be sent to Redis as UTF-8.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{name} must be valid Unicode (no lone surrogates)") from None
