"""Usage and audit records built from a request's facts."""

from __future__ import annotations

import msgspec
import pytest

from api_router.usage.record import (
    RouteAttempt,
    UsageFacts,
    UsageRecord,
    build_records,
    status_of,
    usage_of,
)


@pytest.mark.parametrize(
    ("http_status", "status"),
    [
        (200, "ok"),
        (401, "denied"),
        (402, "denied"),
        (429, "denied"),
        (400, "denied"),
        (502, "upstream_error"),
        (503, "upstream_error"),
        (504, "timeout"),
    ],
)
def test_status_follows_the_http_status(http_status: int, status: str) -> None:
    assert status_of(http_status) == status


class Decision(msgspec.Struct):
    outcome: str
    limit: str


def test_records_carry_the_facts_and_split_the_timings() -> None:
    facts = UsageFacts(
        tenant="acme",
        key_id="kabc",
        auth_method="api_key",
        model="m",
        node_id="n1",
        pool="edge",
        prompt_tokens=3,
        completion_tokens=5,
        queue_ms=1.5,
        inference_ms=10.0,
        route_tried=[RouteAttempt("n1", "edge", "sticky")],
        status="cancelled",
    )
    audit = build_records(
        facts,
        request_id="req_" + "ab" * 16,
        http_status=200,
        error_code=None,
        started_at=1_800_000_000.0,
        elapsed_s=0.0125,
        gateway_instance="gw-1",
        limit_decisions=[Decision("queued", "tenant.requests")],
    )
    assert audit.record_id == "usage_" + "ab" * 16
    assert audit.status == "cancelled"  # the facts know better than the 200 already sent
    assert (audit.timings.total_ms, audit.timings.gateway_ms) == (12.5, 1.0)
    assert audit.started_at == "2027-01-15T08:00:00.000Z"
    assert audit.finished_at == "2027-01-15T08:00:00.012Z"
    assert audit.limit_decisions == [{"outcome": "queued", "limit": "tenant.requests"}]
    usage = usage_of(audit)
    assert type(usage) is UsageRecord
    assert msgspec.to_builtins(usage).keys() == set(UsageRecord.__struct_fields__)
    assert (usage.routing.outcome, usage.routing.attempts) == ("dispatched", 1)
