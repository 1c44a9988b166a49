"""Usage totals and bar geometry for the Usage page's charts."""

from __future__ import annotations

from decimal import Decimal

from byollm.control.views import UsageRowView
from byollm.panel.charts import CHART_WIDTH, bars, totals


def _row(principal: str, model: str, host: str, requests: int, credits: str) -> UsageRowView:
    return UsageRowView(principal=principal, model=model, host=host, bucket="ai", day=None, requests=requests,
                        errors=1, input_tokens=10, output_tokens=5, credits=credits)


def test_totals_sum_by_dimension_largest_first_with_names() -> None:
    rows = [_row("u1", "opus", "bedrock", 3, "0"), _row("u2", "opus", "anthropic", 5, "1.5"),
            _row("u1", "gpt-5", "openai", 1, "0.25")]
    by_model = totals(rows, "model")
    assert [(t.key, t.requests, t.credits) for t in by_model] == [("opus", 8, Decimal("1.5")),
                                                                  ("gpt-5", 1, Decimal("0.25"))]
    by_person = totals(rows, "principal", {"u1": "a@x.test"})
    assert by_person[0].key == "u2" and by_person[1].key == "a@x.test" and by_person[1].errors == 2


def test_bars_scale_to_the_largest_value() -> None:
    items = totals([_row("u1", "a", "h", 4, "0"), _row("u1", "b", "h", 2, "0"), _row("u1", "c", "h", 0, "0")],
                   "model")
    drawn = bars(items)
    assert [b.width for b in drawn] == [CHART_WIDTH, CHART_WIDTH // 2, 1]
    assert drawn[1].y > drawn[0].y
    assert bars([]) == []
