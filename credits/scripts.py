"""The Lua scripts: read once from ``credits/lua``, called by SHA.

Each script is ``prelude.lua`` followed by its own file, with the bounds of
:mod:`credits.limits` written in, so Python and Lua share one set of numbers.
Calling by SHA sends 40 bytes instead of the source; after a failover or a
``SCRIPT FLUSH`` the server answers NOSCRIPT and :func:`credits.steps.run_script`
sends the source once with EVAL, which also caches it again (as redis-py's
``Script.__call__`` does).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from credits import limits

_PLACEHOLDER = re.compile(r"__([A-Z_]+)__")


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: str
    sha: str


def _fill(source: str) -> str:
    def value(match: re.Match[str]) -> str:
        number = getattr(limits, match[1])
        if not isinstance(number, int):
            raise TypeError(f"limits.{match[1]} is not an int")
        return str(number)

    return _PLACEHOLDER.sub(value, source)


def _read(name: str) -> str:
    return resources.files("credits").joinpath("lua", f"{name}.lua").read_text("utf-8")


@cache
def script(name: str) -> Script:
    """The script ``name`` with the prelude in front, loaded once per process."""
    source = _fill(_read("prelude") + "\n" + _read(name))
    return Script(name=name, source=source, sha=hashlib.sha1(source.encode("utf-8")).hexdigest())
