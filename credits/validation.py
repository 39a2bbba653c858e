"""Input checks that run before anything is sent to Redis.

Each check raises :class:`~credits.errors.InvalidInputError` with the bound it
enforces, so bad input never reaches a script and the store stays untouched.
``bool`` is refused wherever an ``int`` is expected: ``True`` is not one credit.
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


def check_amount(amount: object, name: str = "amount", minimum: int = 1) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidInputError(f"{name} must be an int, got {type(amount).__name__} {amount!r}")
    if not minimum <= amount <= limits.AMOUNT_MAX:
        raise InvalidInputError(f"{name} must be in [{minimum}, {limits.AMOUNT_MAX}], got {amount}")
    return amount


def check_idempotency_key(key: object) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str):
        raise InvalidInputError(f"idempotency_key must be a str, got {type(key).__name__}")
    if not 1 <= len(key) <= limits.IDEMPOTENCY_KEY_CHARS_MAX:
        raise InvalidInputError(
            f"idempotency_key must be 1 to {limits.IDEMPOTENCY_KEY_CHARS_MAX} characters"
        )
    _refuse_unencodable("idempotency_key", key)
    return key


def encode_metadata(metadata: object) -> str:
    """Metadata as compact JSON ('' for none), at most METADATA_BYTES_MAX bytes."""
    if metadata is None:
        return ""
    if not isinstance(metadata, dict):
        raise InvalidInputError(f"metadata must be a dict, got {type(metadata).__name__}")
    try:
        encoded = json.dumps(metadata, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"metadata must be JSON-encodable: {exc}") from None
    size = len(encoded.encode("utf-8", errors="surrogatepass"))
    if size > limits.METADATA_BYTES_MAX:
        raise InvalidInputError(
            f"metadata is {size} bytes encoded, more than {limits.METADATA_BYTES_MAX}"
        )
    _refuse_unencodable("metadata", encoded)
    return encoded if metadata else ""


def decode_metadata(encoded: str) -> dict[str, Any]:
    if not encoded:
        return {}
    value = json.loads(encoded)
    return value if isinstance(value, dict) else {}


def check_limit(limit: object, maximum: int, name: str = "limit") -> int:
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise InvalidInputError(f"{name} must be an int, got {type(limit).__name__}")
    if not 1 <= limit <= maximum:
        raise InvalidInputError(f"{name} must be in [1, {maximum}], got {limit}")
    return limit


def check_time_ms(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be an int (Unix ms), got {type(value).__name__}")
    if not 0 <= value <= limits.AMOUNT_MAX:
        raise InvalidInputError(f"{name} must be in [0, {limits.AMOUNT_MAX}] ms, got {value}")
    return value


def ttl_ms(ttl: object) -> int:
    """A hold's time to live: whole seconds (int) or a timedelta, 1 s to 30 days."""
    if isinstance(ttl, timedelta):
        milliseconds = ttl / timedelta(milliseconds=1)
        if not math.isfinite(milliseconds):
            raise InvalidInputError(f"ttl must be finite, got {ttl!r}")
        value = int(milliseconds)
    elif isinstance(ttl, int) and not isinstance(ttl, bool):
        if abs(ttl) > limits.HOLD_TTL_MS_MAX:
            raise InvalidInputError(f"ttl must be at most {limits.HOLD_TTL_MS_MAX // 1000} s")
        value = ttl * 1000
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


def _refuse_unencodable(name: str, value: str) -> None:
    # Lone surrogates cannot be sent to Redis as UTF-8.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{name} must be valid Unicode (no lone surrogates)") from None
