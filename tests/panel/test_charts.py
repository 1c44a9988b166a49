"""Usage totals and bar geometry for the Usage page's charts."""

from __future__ import annotations

from decimal import Decimal

from byollm.control.views import UsageRowView
from byollm.panel.charts import CHART_WIDTH, bars, stacked_credits, totals


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


def test_credits_are_stacked_per_bucket_and_never_mixed() -> None:
    """A model whose only charges are a run's platform and compute credits shows no AI credits."""
    rows = [UsageRowView(principal="u1", model="haiku", host="bedrock", bucket="customer_cloud", day=None,
                         requests=4, errors=0, input_tokens=1, output_tokens=1, credits="0"),
            UsageRowView(principal="u1", model="haiku", host="byollm", bucket="platform", day=None, requests=0,
                         errors=0, input_tokens=0, output_tokens=0, credits="1"),
            UsageRowView(principal="u1", model="haiku", host="byollm", bucket="compute", day=None, requests=0,
                         errors=0, input_tokens=0, output_tokens=0, credits="3"),
            UsageRowView(principal="u1", model="opus", host="anthropic", bucket="ai_credits", day=None, requests=1,
                         errors=0, input_tokens=1, output_tokens=1, credits="2")]
    items = totals(rows, "model")
    haiku = next(t for t in items if t.key == "haiku")
    assert (haiku.bucket("ai_credits"), haiku.bucket("platform"), haiku.bucket("compute")) == (0, 1, 3)
    drawn = {b.label: b for b in stacked_credits(items)}
    assert [s.bucket for s in drawn["haiku"].segments] == ["platform", "compute"]
    assert [s.bucket for s in drawn["opus"].segments] == ["ai_credits"]
    assert drawn["haiku"].end == CHART_WIDTH and drawn["haiku"].total == "4"


def test_credits_read_as_people_read_them() -> None:
    from byollm.panel.charts import credits_text
    assert [credits_text(v) for v in ("2.000000", "0.011125", "49999.988875", "0", "-3.50")] == \
        ["2", "0.0111", "49999.99", "0", "-3.5"]
