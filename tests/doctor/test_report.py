"""The report survives the API's JSON (the CLI rebuilds it) and the CLI's merge replaces skipped checks."""

from __future__ import annotations

from byollm.doctor.report import Check, DoctorInputs, DoctorReport, RouteNeed, ScopeInputs, failing, skipped
from byollm.errors import ErrorClass


def _report() -> DoctorReport:
    scope = ScopeInputs(scope="team", title="Team-wide role", role_arn="arn:aws:iam::111122223333:role/r",
                        agent_uid=None, subjects={"runs users start": "scoped_principal:T/user:U"},
                        required_subjects=("scoped_principal:T/user:U",),
                        routes=(RouteNeed("claude-opus-4-7", "global.x", "x", ("arn:a", "arn:b")),),
                        fixes={"trust_policy": {"json": "{}"}})
    inputs = DoctorInputs(team_uid="T", region="us-east-1", issuer_url="https://issuer.example", audience="aud",
                          scopes=(scope,), probe_request_ids=("doctor_1",))
    checks = [failing("team.trust_policy", "Trust", "condition X is false", ErrorClass.ROLE_ASSUMPTION_FAILED,
                      fixes={"json": "{}"}),
              skipped("team.permissions", "Permissions", "needs the CLI", needs_cli=True)]
    return DoctorReport("T", None, checks, "unknown", inputs)


def test_round_trip_through_json() -> None:
    report = _report()
    again = DoctorReport.from_dict(report.to_dict())
    assert again.to_dict() == report.to_dict()
    assert again.check("team.trust_policy").error_class is ErrorClass.ROLE_ASSUMPTION_FAILED
    assert again.inputs is not None and again.inputs.issuer_host == "issuer.example"
    assert report.to_dict()["needs_cli"] == ["team.permissions"] and not report.ok


def test_merge_replaces_same_ids_and_keeps_order() -> None:
    local = [Check(id="team.permissions", title="Permissions", status="pass", detail="ok"),
             Check(id="account.invocation_logging", title="Logging", status="pass", detail="on", scope="account")]
    merged = _report().merged(local, "enabled")
    assert [c.id for c in merged.checks] == ["team.trust_policy", "team.permissions", "account.invocation_logging"]
    assert merged.check("team.permissions").status == "pass" and not merged.needs_cli
    assert merged.invocation_logging == "enabled"
    assert [scope for scope, _ in merged.grouped()] == ["team", "account"]
