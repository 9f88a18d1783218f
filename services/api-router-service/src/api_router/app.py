"""The app factory: routes, middleware order and the lifespan that owns every client.

Request path, outermost first (read top to bottom)::

    ServerErrorMiddleware      Starlette's last resort: a bug becomes a JSON 500
    RequestContextMiddleware   request id, telemetry span, metrics, access log
    ShutdownMiddleware         while shutting down: new requests refused 503, and those
                               the grace could not wait for answered 503 (not cancelled)
    ExceptionMiddleware        every ApiError / HTTPException rendered by render_error
    Router
      AuthMiddleware(scope)    per route: RFC 9421 signature or API key, then the route's
                               scope (a signed body's digest is checked when it is read)
      IdempotencyMiddleware    chat routes, requests with an Idempotency-Key only: claim
                               the key, or replay its stored answer (one Redis round trip)
      handler                  body limits, decode, admit (api/limits.py: limits and budget,
                               one Redis round trip), route, dispatch, respond, settle
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from functools import partial

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from api_router.api.error_responses import render_error
from api_router.api.openapi import build_openapi
from api_router.api.public.job_runner import JOB_RUNNER_STATE, JobRunner
from api_router.api.request_context import RequestContextMiddleware
from api_router.api.routes import routes
from api_router.api.shutdown_middleware import ShutdownMiddleware
from api_router.auth.authenticator import Authenticator
from api_router.auth.key_events import KeyEventListener
from api_router.auth.key_record import AuthMode
from api_router.auth.key_store import KeyStore
from api_router.auth.last_used import LastUsedRecorder
from api_router.auth.nonce_ledger import NonceLedger
from api_router.auth.secret_box import SecretBox
from api_router.auth.signature_verifier import SignatureVerifier
from api_router.config.last_known_good import LastKnownGood, Saved
from api_router.config.loader import require_kek, require_pepper
from api_router.config.settings import Settings
from api_router.dispatch.attempt_watch import AttemptWatch
from api_router.dispatch.direct_nodes import DirectNodes
from api_router.dispatch.direct_probe import DirectProber
from api_router.dispatch.dispatcher import Dispatcher
from api_router.dispatch.failover import Failover
from api_router.dispatch.http_transport import HttpTransport
from api_router.dispatch.reply_reader import ReplyReader
from api_router.dispatch.transport import Transports
from api_router.errors import ApiError, ShuttingDown, StoreUnavailable
from api_router.graceful_shutdown import SHUTDOWN_STATE, GracefulShutdown
from api_router.idempotency.key_claims import KeyClaims
from api_router.jobs.job_store import JobStore
from api_router.keyspace import IDEMPOTENCY_LEASE_GRACE_S, Keyspace
from api_router.limiter.admission import Admission
from api_router.limiter.budget_usage import BudgetUsage
from api_router.limiter.month_usage import MonthUsage
from api_router.limiter.policy_source import PolicySource
from api_router.redis_store import Redis, StoreErrors, connect
from api_router.routing.health_registry import HealthRegistry
from api_router.routing.override_store import OverrideStore
from api_router.routing.router import Router
from api_router.services import Services
from api_router.task_cancellation import stop_task
from api_router.telemetry.request_telemetry import Telemetry
from api_router.usage.audit_database import AuditDatabase
from api_router.usage.audit_store import AuditStore
from api_router.usage.exporter import UsageExporter

log = logging.getLogger(__name__)

_SUBSCRIBE_WAIT_S = 2.0
# Shutdown waits this long at most for last_used_at to reach Redis (the other writes of
# the shutdown have bounds of their own, at most 2 s).
_LAST_USED_FLUSH_S = 1.0


def create_app(settings: Settings) -> Starlette:
    pepper = require_pepper(settings)  # refuse to build an app that cannot check keys
    box = SecretBox(require_kek(settings))  # ... or open signing secrets
    instance_id = settings.server.instance_id or _new_instance_id()
    # Loaded here so that an invalid policies file stops start-up, not the first request.
    policies = PolicySource(
        Keyspace(settings.redis.key_prefix),
        settings.limits.policies_file,
        settings.limits.reload_interval_s,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Mapping[str, GracefulShutdown]]:
        async with AsyncExitStack() as stack:
            services = await _open_services(settings, pepper, box, instance_id, policies, stack)
            app.state.services = services
            setattr(app.state, JOB_RUNNER_STATE, _open_job_runner(services, stack))
            log.info("gateway ready", extra={"instance_id": instance_id})
            # The server finds the shutdown here and runs it before it stops listening.
            yield {SHUTDOWN_STATE: services.shutdown}
            # Shutdown: requests were refused, drained and answered (graceful_shutdown.py)
            # and the server stopped listening; the exit stack now stops the background
            # tasks and closes the clients, in reverse order of opening.
            log.info("gateway stopping", extra={"instance_id": instance_id})

    return Starlette(
        routes=routes(),
        middleware=[Middleware(RequestContextMiddleware), Middleware(ShutdownMiddleware)],
        exception_handlers={
            ApiError: render_error,
            HTTPException: render_error,
            Exception: render_error,
        },
        lifespan=lifespan,
    )


async def _open_services(
    settings: Settings,
    pepper: str,
    box: SecretBox,
    instance_id: str,
    policies: PolicySource,
    stack: AsyncExitStack,
) -> Services:
    keys = Keyspace(settings.redis.key_prefix)
    store_errors = StoreErrors()
    redis = connect(settings.redis, errors=store_errors)
    stack.push_async_callback(redis.aclose)
    direct_nodes = DirectNodes(settings.direct)  # closed after the loops that use it stop
    stack.push_async_callback(direct_nodes.aclose)
    health = HealthRegistry(redis, keys, settings.health)
    telemetry = Telemetry(settings.telemetry, lambda: health.snapshot)
    stack.callback(telemetry.shutdown)
    telemetry.metrics.observe_store_errors(store_errors)
    budgets = BudgetUsage(
        redis, settings.telemetry.budget_refresh_s, settings.telemetry.max_tenants
    )
    telemetry.metrics.observe_budgets(budgets)
    replies = ReplyReader(redis, keys.reply_stream(instance_id))
    key_store = KeyStore(redis, keys, pepper, settings.auth.key_cache_ttl_s, box)
    stack.push_async_callback(key_store.aclose)
    key_events = KeyEventListener(redis, keys.key_events, key_store)
    last_used = LastUsedRecorder(redis, keys)
    verifier = SignatureVerifier(
        key_store,
        NonceLedger(redis, keys, settings.auth.nonce_window_s),
        settings.auth.max_clock_skew_s,
    )
    overrides = OverrideStore(redis, keys, settings.routing.overrides_refresh_s)
    router = Router(
        settings.routing,
        lambda: health.snapshot,
        lambda: policies.policies,
        lambda: overrides.current,
    )
    telemetry.metrics.observe_breakers(router.breakers.states)
    telemetry.metrics.observe_drains(lambda: overrides.current)
    dispatcher = Dispatcher(
        redis, keys, replies, settings.dispatch, settings.stream, router.stream_ended
    )
    transports = Transports(
        dispatcher, HttpTransport(direct_nodes, settings.stream, router.stream_ended)
    )
    prober = DirectProber(direct_nodes, redis, keys, instance_id, health, router.breakers)
    failover = Failover(router.breakers, router.budget, settings.routing)
    shutdown = GracefulShutdown(
        settings.server.graceful_shutdown_s,
        lambda: transports.stop(ShuttingDown("the gateway shut down before the node answered")),
    )
    # Closed after its loops stop (pushed before them, so run after): ships what is queued.
    usage = UsageExporter(
        settings.kafka, settings.usage, client_id=instance_id, audit_topic=settings.audit.topic
    )
    stack.push_async_callback(usage.aclose)
    audit = AuditStore(
        redis, keys, settings.audit, usage.record, await _audit_database(settings, stack)
    )
    telemetry.metrics.observe_usage_export(usage)
    admission = await _open_admission(settings, redis, policies, budgets, store_errors, stack)
    # Once the loops have stopped, what is pending for Redis (settlements, audit records,
    # cancel marks, last_used_at) is written at the same time, each step within its own
    # bound: a stalled Redis holds the exit for the longest bound, not for their sum.
    stack.push_async_callback(
        _together,
        admission.aclose,
        audit.aclose,
        dispatcher.aclose,
        partial(_within, _LAST_USED_FLUSH_S, last_used.flush),
    )
    services = Services(
        settings=settings,
        instance_id=instance_id,
        keys=keys,
        redis=redis,
        key_store=key_store,
        authenticator=Authenticator(
            key_store, verifier, partial(_tenant_auth, policies), last_used
        ),
        health=health,
        replies=replies,
        dispatcher=dispatcher,
        transports=transports,
        prober=prober,
        last_known_good=LastKnownGood(settings.last_known_good),
        router=router,
        overrides=overrides,
        failover=failover,
        shutdown=shutdown,
        policies=policies,
        admission=admission,
        month_usage=MonthUsage(redis, keys),
        telemetry=telemetry,
        usage=usage,
        audit=audit,
        openapi=json.dumps(build_openapi()).encode(),
        idempotency=KeyClaims(
            redis,
            keys,
            settings.idempotency.retention_s,
            settings.dispatch.request_timeout_s + IDEMPOTENCY_LEASE_GRACE_S,
        ),
        jobs=JobStore(redis, keys, settings.jobs.retention_s),
    )
    try:
        await replies.open()
        await health.refresh()
        await overrides.refresh()
    except StoreUnavailable as exc:
        # Serve anyway: /readyz says not ready (or local-only, with direct nodes) and the
        # background tasks catch up when Redis comes back.
        log.warning("starting not ready: %s", exc.for_operators)
        await _restore(services)
    await prober.probe_all()  # direct nodes are routable from the first request
    loops = {
        "health_registry": health.run(),
        "routing_overrides": overrides.run(),
        "reply_reader": replies.run(),
        "attempt_watch": AttemptWatch(
            replies.waiting, lambda: health.snapshot, direct=transports.direct.check_lost
        ).run(),
        "audit_writer": audit.run(),
        "usage_exporter": usage.run(),
        "policies_reload": policies.run(),
        "key_events": key_events.run(),
        "key_last_used": last_used.run(),
        "budget_usage": budgets.run(),
        "direct_probe": prober.run(),
        "last_known_good": services.last_known_good.run(
            lambda: Saved(overrides.read_at, list(overrides.stored), key_store.verified())
        ),
    }
    for name, job in loops.items():
        task = asyncio.create_task(job, name=name)
        services.background[name] = task
        stack.push_async_callback(stop_task, task)
    # Serve with key change notices live, so a revocation is never missed from the start.
    if not await key_events.wait_subscribed(_SUBSCRIBE_WAIT_S):
        log.warning("key change notices not subscribed at start-up; keys cached for 1 s")
    return services


def _open_job_runner(services: Services, stack: AsyncExitStack) -> JobRunner:
    """The runner of asynchronous jobs and its sweep for jobs of dead replicas. Stopped
    before the clients close: its runs are left to other replicas, not charged here."""
    runner = JobRunner(services)
    sweep = asyncio.create_task(runner.sweep(), name="job_sweeper")
    services.background["job_sweeper"] = sweep
    stack.push_async_callback(stop_task, sweep)
    stack.push_async_callback(runner.stop)
    return runner


async def _restore(services: Services) -> None:
    """Start-up without Redis: the last-known-good cache's overrides and keys, if trusted."""
    saved = await services.last_known_good.load()
    if saved is None:
        return
    if saved.overrides_read_at is not None:
        services.overrides.restore(saved.overrides)
    services.key_store.restore(saved.keys)
    log.warning(
        "serving from the last-known-good cache",
        extra={"overrides": len(saved.overrides), "keys": len(saved.keys)},
    )


async def _audit_database(settings: Settings, stack: AsyncExitStack) -> AuditDatabase | None:
    """The audit trail's reads in PostgreSQL; the pool fills in the background."""
    if settings.audit.database_url is None:
        return None
    database = AuditDatabase(settings.audit.database_url, settings.audit.read_pool_size)
    await database.open()
    stack.push_async_callback(database.aclose)
    return database


def _tenant_auth(policies: PolicySource, tenant: str) -> AuthMode:
    current = policies.policies
    entry = current.tenants.get(tenant) if current is not None else None
    return entry.auth if entry is not None else "signature_or_key"


async def _open_admission(
    settings: Settings,
    redis: Redis,
    policies: PolicySource,
    budgets: BudgetUsage,
    errors: StoreErrors,
    stack: AsyncExitStack,
) -> Admission:
    # Admission has its own pool whose commands fail within limits.store_timeout_s, so a
    # slow Redis turns into the plan's on_store_error instead of a hanging request.
    bounded = connect(settings.redis, bounded_s=settings.limits.store_timeout_s, errors=errors)
    stack.push_async_callback(bounded.aclose)
    lease_s = settings.dispatch.request_timeout_s + settings.limits.lease_grace_s
    keys = Keyspace(settings.redis.key_prefix)
    admission = Admission(bounded, redis, keys, policies, int(lease_s * 1000), budgets)
    # SIGHUP reloads the policies file (without a handler it would end the process).
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, policies.request_reload)
    except (RuntimeError, ValueError):  # not the main thread: an embedded app, not `serve`
        log.warning("SIGHUP cannot reload policies here; the file is still watched")
    else:
        stack.callback(loop.remove_signal_handler, signal.SIGHUP)
    return admission


async def _together(*steps: Callable[[], Awaitable[None]]) -> None:
    await asyncio.gather(*(step() for step in steps))


async def _within(seconds: float, step: Callable[[], Awaitable[None]]) -> None:
    with suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await step()


def _new_instance_id() -> str:
    host = "".join(c if c.isalnum() or c in "._-" else "-" for c in socket.gethostname())
    return f"{host[:40]}-{os.getpid()}-{secrets.token_hex(3)}"
