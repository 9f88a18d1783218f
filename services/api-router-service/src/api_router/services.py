"""The typed bundle of clients and stages the lifespan opens and hands to the app."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from starlette.types import Scope

from api_router.auth.authenticator import Authenticator
from api_router.auth.key_store import KeyStore
from api_router.config.last_known_good import LastKnownGood
from api_router.config.settings import Settings
from api_router.dispatch.direct_probe import DirectProber
from api_router.dispatch.dispatcher import Dispatcher
from api_router.dispatch.failover import Failover
from api_router.dispatch.reply_reader import ReplyReader
from api_router.dispatch.transport import Transports
from api_router.graceful_shutdown import GracefulShutdown
from api_router.idempotency.key_claims import KeyClaims
from api_router.jobs.job_store import JobStore
from api_router.keyspace import Keyspace
from api_router.limiter.admission import Admission
from api_router.limiter.month_usage import MonthUsage
from api_router.limiter.policy_source import PolicySource
from api_router.redis_store import Redis
from api_router.routing.health_registry import HealthRegistry
from api_router.routing.override_store import OverrideStore
from api_router.routing.router import Router
from api_router.telemetry.request_telemetry import Telemetry
from api_router.usage.audit_store import AuditStore
from api_router.usage.exporter import UsageExporter


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    instance_id: str
    keys: Keyspace
    redis: Redis
    key_store: KeyStore
    authenticator: Authenticator
    health: HealthRegistry
    replies: ReplyReader
    dispatcher: Dispatcher  # the streams transport
    transports: Transports  # both transports: what requests dispatch through
    prober: DirectProber  # health of the direct nodes
    last_known_good: LastKnownGood  # what serves a start-up without Redis
    router: Router
    overrides: OverrideStore
    failover: Failover
    shutdown: GracefulShutdown
    policies: PolicySource
    admission: Admission
    month_usage: MonthUsage
    telemetry: Telemetry
    usage: UsageExporter
    audit: AuditStore
    openapi: bytes
    idempotency: KeyClaims
    jobs: JobStore
    # Long-running tasks of this replica by name; /healthz fails when one has stopped.
    background: dict[str, asyncio.Task[None]] = field(default_factory=dict)


def services_of(scope: Scope) -> Services:
    """The services of the app serving ``scope`` (set by the lifespan)."""
    services: Services = scope["app"].state.services
    return services
