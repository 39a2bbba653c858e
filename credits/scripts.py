"""The Lua scripts: read once from ``credits/lua``, called by SHA.

A script names the shared parts it uses at its top, BullMQ style::

    --- @include "upkeep"

and each part (``lua/include/<name>.lua``) names the parts *it* uses the same
way, so a reader sees what every script depends on. The loader puts each part
once, dependencies first, in front of the script's own body (leaving out the
functions the script never calls), and writes in the
bounds of :mod:`credits.limits` (``__LAZY_EXPIRE_PER_CALL_MAX__``) and the log's
field names (``__LOG_FIELDS__``), so Python and Lua share one set of numbers
and names.

Calling by SHA sends 40 bytes instead of the source; after a failover or a
``SCRIPT FLUSH`` the server answers NOSCRIPT and :func:`credits.protocol.run_script`
sends the source once with EVAL, which also caches it again (as redis-py's
``Script.__call__`` does).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from credits import limits, log_format
from credits.lua_prune import prune

_PLACEHOLDER = re.compile(r"__([A-Z_]+)__")
_INCLUDE = re.compile(r'^--- @include "([a-z_]+)"$', re.MULTILINE)
_READ = re.compile(r"^--- @read$", re.MULTILINE)
# A script that writes only what can be derived again from the log (checkpoints): what
# a caller is told never depends on it, so with wait_replicas it is not waited for.
_DERIVED = re.compile(r"^--- @derived$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: str
    sha: str
    writes: bool = True  # False for a script marked ``--- @read`` or ``--- @derived``


def _value(name: str) -> str:
    if name == "LOG_FIELDS":
        return log_format.lua_table()
    number = getattr(limits, name)
    if not isinstance(number, int):
        raise TypeError(f"limits.{name} is not an int")
    return str(number)


def _fill(source: str) -> str:
    return _PLACEHOLDER.sub(lambda match: _value(match[1]), source)


def _read(path: str) -> str:
    return resources.files("credits").joinpath("lua", f"{path}.lua").read_text("utf-8")


def includes(source: str) -> list[str]:
    """The parts ``source`` names with ``--- @include``, in the order named."""
    return _INCLUDE.findall(source)


def _parts_in_order(source: str) -> list[str]:
    """Every part ``source`` needs, transitively, each after the parts it needs."""
    ordered: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in ordered:
            return
        if name in path:
            raise ValueError(f"Lua include cycle: {' -> '.join((*path, name))}")
        for needed in includes(_read(f"include/{name}")):
            visit(needed, (*path, name))
        ordered.append(name)

    for name in includes(source):
        visit(name, ())
    return ordered


def assemble(body: str) -> str:
    """``body`` with every part it includes in front, the placeholders filled and the
    parts' functions it never calls left out (:mod:`credits.lua_prune`): what Redis
    runs. (The tests also run small bodies of their own this way, to hold a Lua part
    and its Python twin together.)"""
    parts = [_read(f"include/{part}") for part in _parts_in_order(body)]
    return prune(_fill("\n".join([*parts, body])))


@cache
def script(name: str) -> Script:
    """The script ``name`` with the parts it includes in front, loaded once per process."""
    body = _read(name)
    source = assemble(body)
    return Script(
        name=name,
        source=source,
        sha=hashlib.sha1(source.encode("utf-8")).hexdigest(),
        writes=_READ.search(body) is None and _DERIVED.search(body) is None,
    )
