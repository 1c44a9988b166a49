"""Usage totals per dimension and the geometry of the inline-SVG bar charts that show them.

Why server-side SVG: the Content-Security-Policy allows no inline script and there is no front-end build,
so charts are plain markup the template draws from these numbers; each chart also comes with a table of
the same numbers (screen readers and keyboard users get the data, not a picture).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from byollm.control.views import UsageRowView

__all__ = ["CREDIT_BUCKETS", "Bar", "Segment", "StackedBar", "Total", "bars", "credits_text", "stacked_credits",
           "totals"]

CREDIT_BUCKETS = (("ai_credits", "AI credits"), ("platform", "Platform credits"), ("compute", "Compute credits"))
"""The three allowances credits are charged against, in the order charts stack and tables list them."""

BAR_HEIGHT = 22
BAR_GAP = 6
CHART_WIDTH = 420  # the bars' drawing width; labels sit left of it


def credits_text(value: Decimal | str | int) -> str:
    """Credits as people read them: two decimals from 100 up, four below, no trailing zeros ("2", not
    "2.000000"); the exact figure stays in the API and the ledger."""
    amount = Decimal(value)
    places = Decimal("0.01") if abs(amount) >= 100 else Decimal("0.0001")
    text = f"{amount.quantize(places):f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return "0" if text in ("-0", "") else text


@dataclass(frozen=True, slots=True)
class Total:
    key: str
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    credits: Decimal
    by_bucket: dict[str, Decimal] = field(default_factory=dict)  # credits per CREDIT_BUCKETS key

    def bucket(self, key: str) -> Decimal:
        return self.by_bucket.get(key, Decimal(0))


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: str
    y: int
    width: int


def totals(rows: Iterable[UsageRowView], dimension: str, names: dict[str, str] | None = None) -> list[Total]:
    """Sum ``rows`` by one dimension (``principal``, ``model``, ``host`` or ``bucket``), largest first."""
    acc: dict[str, list[int | Decimal]] = {}
    buckets: dict[str, dict[str, Decimal]] = {}
    for row in rows:
        raw = getattr(row, dimension) or "(none)"
        key = (names or {}).get(raw, raw)
        entry = acc.setdefault(key, [0, 0, 0, 0, Decimal(0)])
        entry[0] += row.requests
        entry[1] += row.errors
        entry[2] += row.input_tokens
        entry[3] += row.output_tokens
        entry[4] += Decimal(row.credits)
        if row.bucket and Decimal(row.credits):
            per = buckets.setdefault(key, {})
            per[row.bucket] = per.get(row.bucket, Decimal(0)) + Decimal(row.credits)
    result = [Total(key, int(e[0]), int(e[1]), int(e[2]), int(e[3]), Decimal(e[4]), buckets.get(key, {}))
              for key, e in acc.items()]
    return sorted(result, key=lambda t: (-t.requests, t.key))


def bars(items: list[Total], metric: str = "requests") -> list[Bar]:
    """Bars scaled to the largest value of ``metric`` (``requests`` or ``credits``)."""
    values = [Decimal(getattr(t, metric)) for t in items]
    top = max(values, default=Decimal(0))
    out = []
    for i, (item, value) in enumerate(zip(items, values, strict=True)):
        width = int(CHART_WIDTH * value / top) if top > 0 else 0
        shown = credits_text(value) if metric == "credits" else str(value)
        out.append(Bar(label=item.key, value=shown, y=i * (BAR_HEIGHT + BAR_GAP), width=max(width, 1)))
    return out


@dataclass(frozen=True, slots=True)
class Segment:
    bucket: str
    x: int
    width: int
    value: str


@dataclass(frozen=True, slots=True)
class StackedBar:
    label: str
    y: int
    segments: list[Segment]
    total: str
    end: int  # x where the bar ends (its total is written after it)


def stacked_credits(items: list[Total]) -> list[StackedBar]:
    """Credits per item as one bar of three segments (AI, platform, compute), so a model whose only
    charges are a run's platform and compute credits never looks as if it spent AI credits. Rows need
    ``bucket`` among their usage report's group keys."""
    totals_ = [sum((t.bucket(k) for k, _ in CREDIT_BUCKETS), Decimal(0)) for t in items]
    top = max(totals_, default=Decimal(0))
    out = []
    for i, (item, total) in enumerate(zip(items, totals_, strict=True)):
        x, segments = 0, []
        for key, _ in CREDIT_BUCKETS:
            value = item.bucket(key)
            if value > 0 and top > 0:
                width = max(int(CHART_WIDTH * value / top), 1)
                segments.append(Segment(bucket=key, x=x, width=width, value=credits_text(value)))
                x += width
        out.append(StackedBar(label=item.key, y=i * (BAR_HEIGHT + BAR_GAP), segments=segments,
                              total=credits_text(total),
                              end=x))
    return out
