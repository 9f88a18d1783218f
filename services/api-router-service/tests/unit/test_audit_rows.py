"""Audit messages as the spool keys and the sink's rows see them: ids per kind, days of
partitions, what is past the retention."""

from __future__ import annotations

import datetime as dt

import msgspec

from api_router.usage.audit_partitions import first_kept_day, partition_name
from api_router.usage.audit_rows import AuditRows, day_of
from api_router.usage.record import (
    AdminAction,
    AuditRecord,
    UsageFacts,
    audit_message,
    build_records,
)


def _record(finished_at: float) -> AuditRecord:
    facts = UsageFacts(tenant="acme", key_id="k1", model="m")
    return build_records(
        facts,
        request_id="req_" + "ab" * 16,
        http_status=429,
        error_code="rate_limited",
        started_at=finished_at,
        elapsed_s=0.0,
        gateway_instance="gw",
    )


def test_each_kind_has_its_own_spool_key_and_the_tenant_as_message_key() -> None:
    record = build_records(
        UsageFacts(tenant="acme"),
        request_id="req_" + "ab" * 16,
        http_status=200,
        error_code=None,
        started_at=0.0,
        elapsed_s=0.0,
        gateway_instance="gw",
    )
    action = AdminAction(at="2026-11-26T10:00:00.000Z", actor="k", action="keys.revoke", target="x")
    request_message, action_message = audit_message(record), audit_message(action)
    assert record.record_id == "usage_" + "ab" * 16  # the usage record keeps its id
    assert request_message.record_id == "audit_" + "ab" * 16
    assert (request_message.tenant, request_message.request) == ("acme", record)
    assert action_message.record_id == "admin_" + action.action_id.removeprefix("act_")
    assert (action_message.tenant, action_message.finished_at) == ("", action.at)
    assert action.action_id != AdminAction(at="", actor="", action="", target="").action_id


def test_rows_are_split_by_kind_and_records_past_the_retention_are_skipped() -> None:
    today = dt.date(2026, 11, 26)
    oldest = first_kept_day(today, 30)
    assert oldest == dt.date(2026, 10, 27)
    recent = dt.datetime(2026, 11, 25, 23, 59, 59, tzinfo=dt.UTC).timestamp()
    old = dt.datetime(2026, 10, 26, 12, 0, tzinfo=dt.UTC).timestamp()
    action = AdminAction(at="2026-11-26T00:00:01.000Z", actor="k", action="a", target="t")
    rows = AuditRows()
    for entry in (_record(recent), _record(old), action):
        rows.add(msgspec.json.encode(audit_message(entry)), oldest)
    rows.add(b"not json", oldest)
    assert [r[0] for r in rows.requests] == ["req_" + "ab" * 16]
    assert rows.requests[0][2:4] == ("acme", "denied")
    assert [a[0] for a in rows.actions] == [action.action_id]
    assert (rows.past_retention, rows.unreadable) == (1, 1)
    assert rows.days() == ({dt.date(2026, 11, 25)}, {dt.date(2026, 11, 26)})


def test_days_are_utc_days_of_the_record_time() -> None:
    assert day_of("2026-11-26T23:30:00.000+02:00") == dt.date(2026, 11, 26)
    assert day_of("2026-11-27T01:30:00.000+02:00") == dt.date(2026, 11, 26)
    assert partition_name("audit_requests", dt.date(2026, 1, 5)) == "audit_requests_20260105"
