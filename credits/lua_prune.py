"""Leave out of a script the shared functions it never calls.

Redis runs a cached script's whole chunk on every call, so every
``local function`` of every included part is created again, call after call,
whether the script uses it or not: about a thousand server instructions a
function. A read (``read_account``) includes the account part and with it the
whole log and plans machinery it never runs; left out, a balance read costs
about a fifth less on the server. So the loader drops every top-level
function that nothing left in the script names, until none is left to drop.

The scan is lexical and conservative: a name counts as used wherever it
appears as an identifier outside strings and comments (not after ``.`` or
``:``, which is a field), so a false "used" only keeps a function. It relies
on one layout rule of ``credits/lua``, checked here: a top-level function
starts with ``local function`` at column 0 and ends at the first line that
is exactly ``end``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

_DEFINITION: Final = re.compile(r"^local function ([A-Za-z_][A-Za-z0-9_]*)\(")
_IDENTIFIER: Final = re.compile(r"(?<![A-Za-z0-9_.:])[A-Za-z_][A-Za-z0-9_]*")
_LONG_BRACKET: Final = re.compile(r"\[(=*)\[")


def _code_runs(source: str) -> Iterator[str]:
    """The parts of ``source`` that are code: strings and comments left out."""
    start, i, n = 0, 0, len(source)
    while i < n:
        char = source[i]
        if source.startswith("--", i):
            yield source[start:i]
            long = _LONG_BRACKET.match(source, i + 2)
            if long:
                i = source.index(f"]{long[1]}]", long.end()) + len(long[1]) + 2
            else:
                newline = source.find("\n", i)
                i = n if newline < 0 else newline
            start = i
        elif char in "'\"":
            yield source[start:i]
            i += 1
            while source[i] != char:
                i += 2 if source[i] == "\\" else 1
            i += 1
            start = i
        elif char == "[" and (long := _LONG_BRACKET.match(source, i)):
            yield source[start:i]
            i = source.index(f"]{long[1]}]", long.end()) + len(long[1]) + 2
            start = i
        else:
            i += 1
    yield source[start:]


def names_used(source: str) -> set[str]:
    """Every identifier ``source`` names in its code (not fields, strings or comments)."""
    return {match[0] for run in _code_runs(source) for match in _IDENTIFIER.finditer(run)}


def _blocks(source: str) -> list[tuple[str | None, str]]:
    """``source`` as (function name, its text) for each top-level function, (None, line)
    for everything else."""
    lines = source.split("\n")
    blocks: list[tuple[str | None, str]] = []
    i = 0
    while i < len(lines):
        definition = _DEFINITION.match(lines[i])
        if definition is None:
            blocks.append((None, lines[i]))
            i += 1
            continue
        end = i + 1
        while end < len(lines) and lines[end] != "end":
            if lines[end][:1].strip() and not lines[end].startswith("--"):
                raise ValueError(
                    f"Lua layout: function {definition[1]} has code at column 0 before its "
                    f"'end': {lines[end]!r}"
                )
            end += 1
        if end == len(lines):
            raise ValueError(f"Lua layout: function {definition[1]} has no 'end' at column 0")
        blocks.append((definition[1], "\n".join(lines[i : end + 1])))
        i = end + 1
    return blocks


def prune(source: str) -> str:
    """``source`` without the top-level functions nothing else in it names."""
    blocks = _blocks(source)
    while True:
        used: set[str] = set()
        for name, text in blocks:
            found = names_used(text)
            found.discard(name or "")  # a function calling itself does not keep itself
            used |= found
        kept = [(name, text) for name, text in blocks if name is None or name in used]
        if len(kept) == len(blocks):
            return "\n".join(text for _, text in blocks)
        blocks = kept
