"""The usage record of one finished request, and the audit record that extends it.

Handlers fill a request's :class:`UsageFacts` as it goes (who called, which node, how many
tokens); when the request has been answered, :func:`build_records` turns the facts and the
HTTP outcome into the records that go to Kafka and to the audit store.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

SCHEMA_VERSION = 1

# no_capacity: refused because no node could take the job (drained, full, unhealthy).
Status = Literal["ok", "denied", "no_capacity", "upstream_error", "timeout", "cancelled"]
# What was asked of the model (OpenTelemetry's gen_ai.operation.name).
Operation = Literal["chat", "embeddings"]
AuthMethod = Literal["", "api_key", "signature"]


class RecordTimings(msgspec.Struct, frozen=True):
    total_ms: float
    gateway_ms: float
    queue_ms: float
    inference_ms: float
    ttft_ms: float | None = None  # streamed answers: arrival to the first text sent


class RouteAttempt(msgspec.Struct, frozen=True):
    """One attempt of the routing decision: the node, its pool, why it was picked
    (``sticky``, ``least_loaded``, ``affinity``, ``failover``) and the error code it ended
    with (None: it answered)."""

    node_id: str
    pool: str
    reason: str
    error: str | None = None


class RoutingOutcome(msgspec.Struct, frozen=True):
    # "dispatched" once a node answered, "not_routed" when the request ended before that.
    outcome: str
    attempts: int
    # Why the first candidate was chosen, the plan's candidates in order, each attempt.
    reason: str = ""
    candidates: list[str] = msgspec.field(default_factory=list)
    tried: list[RouteAttempt] = msgspec.field(default_factory=list)


class UsageRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One per finished billable request; ``record_id`` is the consumers' dedupe key."""

    record_id: str
    schema_version: int = SCHEMA_VERSION
    request_id: str
    tenant: str
    key_id: str
    # Added with the embeddings routes; consumers that predate it read every record as a chat.
    operation: Operation = "chat"
    model: str
    node_id: str
    pool: str
    status: Status
    streamed: bool
    http_status: int
    error_code: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: float
    timings: RecordTimings
    routing: RoutingOutcome
    started_at: str  # RFC 3339, UTC, milliseconds
    finished_at: str
    gateway_instance: str


class AuditRecord(UsageRecord, frozen=True, kw_only=True):
    """The usage record plus how the caller was authenticated and what limits decided."""

    auth_method: AuthMethod
    limit_decisions: list[dict[str, Any]]
    # The request whose stored answer this one replayed (Idempotency-Key); such a request
    # ran nothing and has no usage record.
    replay_of: str | None = None


class AdminAction(msgspec.Struct, frozen=True, kw_only=True):
    """One change made through an admin API or CLI: who, what, when."""

    # Unique per action, the same on every re-send: the audit database dedupes on it.
    action_id: str = msgspec.field(default_factory=lambda: f"act_{secrets.token_hex(16)}")
    at: str  # RFC 3339, UTC
    actor: str  # the admin key id, or "cli:<user>" for the command line
    action: str  # e.g. "keys.create", "keys.revoke", "routing.drain"
    target: str  # what it was done to: a key id, a node, a model
    request_id: str | None = None
    details: dict[str, Any] = msgspec.field(default_factory=dict)  # never secrets


class AuditMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One message of the audit topic: a request's audit record or an admin action.

    It travels through the usage spool beside the usage records: ``record_id`` is its spool
    key (``audit_`` or ``admin_`` + the id's hex, never a usage record's ``usage_``), and
    ``tenant`` and ``finished_at`` are what the exporter keys and ages every message by.
    """

    record_id: str
    tenant: str  # the message key; "" for an admin action
    finished_at: str  # the request's finish, or the action's time
    request: AuditRecord | None = None
    action: AdminAction | None = None


def audit_message(entry: AuditRecord | AdminAction) -> AuditMessage:
    if isinstance(entry, AdminAction):
        hex_id = entry.action_id.removeprefix("act_")
        return AuditMessage(
            record_id=f"admin_{hex_id}", tenant="", finished_at=entry.at, action=entry
        )
    hex_id = entry.request_id.removeprefix("req_")
    return AuditMessage(
        record_id=f"audit_{hex_id}",
        tenant=entry.tenant,
        finished_at=entry.finished_at,
        request=entry,
    )


@dataclass(slots=True)
class UsageFacts:
    """What one request's records are built from, filled in as the request goes."""

    tenant: str = ""
    key_id: str = ""
    auth_method: AuthMethod = ""
    operation: Operation = "chat"
    model: str = ""
    node_id: str = ""
    pool: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    queue_ms: float = 0.0
    inference_ms: float = 0.0
    ttft_ms: float | None = None
    streamed: bool = False
    # The routing decision (see RoutingOutcome).
    route_reason: str = ""
    route_candidates: list[str] = field(default_factory=list)
    route_tried: list[RouteAttempt] = field(default_factory=list)
    # Set when the HTTP status alone cannot tell, e.g. a stream the client abandoned.
    status: Status | None = None

    @property
    def identified(self) -> bool:
        """A record is kept only for callers whose key was known (even if then refused)."""
        return bool(self.tenant)


def status_of(http_status: int, error_code: str | None = None) -> Status:
    if http_status < 400:
        return "ok"
    if error_code == "no_capacity":
        return "no_capacity"
    if http_status == 504:
        return "timeout"
    if http_status >= 500:
        return "upstream_error"
    return "denied"  # refused by the gateway: credentials, limits, budget, a bad request


def build_records(
    facts: UsageFacts,
    *,
    request_id: str,
    http_status: int,
    error_code: str | None,
    started_at: float,
    elapsed_s: float,
    gateway_instance: str,
    limit_decisions: Sequence[msgspec.Struct] = (),
    replay_of: str | None = None,
) -> AuditRecord:
    """The audit record of a finished request; :func:`usage_of` cuts the usage record."""
    total_ms = round(elapsed_s * 1000, 3)
    return AuditRecord(
        record_id=f"usage_{request_id.removeprefix('req_')}",
        request_id=request_id,
        tenant=facts.tenant,
        key_id=facts.key_id,
        operation=facts.operation,
        model=facts.model,
        node_id=facts.node_id,
        pool=facts.pool,
        status=facts.status or status_of(http_status, error_code),
        streamed=facts.streamed,
        http_status=http_status,
        error_code=error_code,
        prompt_tokens=facts.prompt_tokens,
        completion_tokens=facts.completion_tokens,
        cost=facts.cost,
        timings=RecordTimings(
            total_ms=total_ms,
            gateway_ms=round(max(total_ms - facts.queue_ms - facts.inference_ms, 0.0), 3),
            queue_ms=facts.queue_ms,
            inference_ms=facts.inference_ms,
            ttft_ms=facts.ttft_ms,
        ),
        routing=RoutingOutcome(
            "dispatched" if facts.node_id else "not_routed",
            len(facts.route_tried),
            facts.route_reason,
            facts.route_candidates,
            facts.route_tried,
        ),
        started_at=rfc3339(started_at),
        finished_at=rfc3339(started_at + elapsed_s),
        gateway_instance=gateway_instance,
        auth_method=facts.auth_method,
        limit_decisions=[msgspec.to_builtins(d) for d in limit_decisions],
        replay_of=replay_of,
    )


_USAGE_FIELDS = UsageRecord.__struct_fields__


def usage_of(audit: AuditRecord) -> UsageRecord:
    return UsageRecord(**{name: getattr(audit, name) for name in _USAGE_FIELDS})


def rfc3339(epoch_s: float) -> str:
    moment = dt.datetime.fromtimestamp(epoch_s, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_rfc3339() -> str:
    return rfc3339(time.time())
