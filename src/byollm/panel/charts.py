"""Usage totals per dimension and the geometry of the inline-SVG bar charts that show them.

Why server-side SVG: the Content-Security-Policy allows no inline script and there is no front-end build,
so charts are plain markup the template draws from these numbers; each chart also comes with a table of
the same numbers (screen readers and keyboard users get the data, not a picture).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from byollm.control.views import UsageRowView

__all__ = ["Bar", "Total", "bars", "totals"]

BAR_HEIGHT = 22
BAR_GAP = 6
CHART_WIDTH = 420  # the bars' drawing width; labels sit left of it


@dataclass(frozen=True, slots=True)
class Total:
    key: str
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    credits: Decimal


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: str
    y: int
    width: int


def totals(rows: Iterable[UsageRowView], dimension: str, names: dict[str, str] | None = None) -> list[Total]:
    """Sum ``rows`` by one dimension (``principal``, ``model``, ``host`` or ``bucket``), largest first."""
    acc: dict[str, list[int | Decimal]] = {}
    for row in rows:
        raw = getattr(row, dimension) or "(none)"
        key = (names or {}).get(raw, raw)
        entry = acc.setdefault(key, [0, 0, 0, 0, Decimal(0)])
        entry[0] += row.requests
        entry[1] += row.errors
        entry[2] += row.input_tokens
        entry[3] += row.output_tokens
        entry[4] += Decimal(row.credits)
    result = [Total(key, int(e[0]), int(e[1]), int(e[2]), int(e[3]), Decimal(e[4])) for key, e in acc.items()]
    return sorted(result, key=lambda t: (-t.requests, t.key))


def bars(items: list[Total], metric: str = "requests") -> list[Bar]:
    """Bars scaled to the largest value of ``metric`` (``requests`` or ``credits``)."""
    values = [Decimal(getattr(t, metric)) for t in items]
    top = max(values, default=Decimal(0))
    out = []
    for i, (item, value) in enumerate(zip(items, values, strict=True)):
        width = int(CHART_WIDTH * value / top) if top > 0 else 0
        out.append(Bar(label=item.key, value=str(value), y=i * (BAR_HEIGHT + BAR_GAP), width=max(width, 1)))
    return out
