"""What a measure hands back, and how a target decides whether it is met.

Kept apart from the measures so the report, the plot and the quick-mode test
read one shape: a :class:`Row` per measure, with numbers or a skip reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True, slots=True)
class Target:
    """A goal from the performance targets (docs/CONTRACT.md).

    ``ratio_min`` / ``ratio_max`` bound project ÷ baseline; ``value_max`` bounds
    the project figure itself (and the baseline figure, when both are the
    ledger's own, as for the sweep), in ``unit``.
    """

    ratio_min: float | None = None
    ratio_max: float | None = None
    value_max: float | None = None
    strict: bool = False  # value_max is "<" rather than "<="

    @property
    def reported_only(self) -> bool:
        """No bound at all: the row is a figure to read, not a goal to meet."""
        return self.ratio_min is None and self.ratio_max is None and self.value_max is None

    def text(self, unit: str) -> str:
        if self.reported_only:
            return "none (reported)"
        parts: list[str] = []
        if self.value_max is not None:
            sign = "<" if self.strict else "≤"
            each = " each" if self.ratio_max is not None else ""
            parts.append(f"{sign} {self.value_max:g} {unit}{each}")
        if self.ratio_min is not None:
            parts.append(f"≥ {self.ratio_min:g}{TIMES}")
        if self.ratio_max is not None:
            parts.append(f"≤ {self.ratio_max:g}{TIMES}")
        return ", ".join(parts)

    def met(self, project: float, baseline: float | None, ratio: float | None) -> bool:
        ok = True
        if self.value_max is not None:
            for value in (project, baseline):
                if value is None:
                    continue
                ok &= value < self.value_max if self.strict else value <= self.value_max
        if self.ratio_min is not None:
            ok &= ratio is not None and ratio >= self.ratio_min
        if self.ratio_max is not None:
            ok &= ratio is not None and ratio <= self.ratio_max
        return ok


@dataclass(frozen=True, slots=True)
class Outcome:
    """The numbers one measure produced; ``notes`` carry sizes, methods and context."""

    project: float
    baseline: float | None
    ratio: float | None
    unit: str
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A measure that could not run here (no PostgreSQL, an API not yet there)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    measure: str
    baseline_name: str
    target_text: str
    project: float | None
    baseline: float | None
    ratio: float | None
    unit: str
    met: bool | None
    seconds: float
    notes: list[str]
    skipped: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
