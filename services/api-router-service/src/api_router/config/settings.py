"""Typed, immutable settings, one struct per area.

The YAML file mirrors this tree; ``configs/router.sample.yaml`` documents every field with
its default. Environment variables ``API_ROUTER__SECTION__KEY`` override the file.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Seconds = Annotated[float, msgspec.Meta(gt=0)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class ServerSettings(_Section, frozen=True):
    host: str = "127.0.0.1"
    port: Port = 8080
    # Bodies above this are refused (413) before they are read whole.
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 1_048_576
    # A body that has not fully arrived by then is answered 408.
    receive_timeout_s: Seconds = 10.0
    # Once its first byte has arrived, a request head has this long to be complete: 408
    # and the connection closed after it (api/edge_protocol.py).
    header_timeout_s: Seconds = 10.0
    # A connection that sends nothing (new, or between requests) is closed after this long.
    keep_alive_s: Seconds = 5.0
    # A request head (request line and header fields) larger than this, or with more
    # fields, is refused with 431 before more of it is read.
    max_head_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 32_768
    max_headers: Annotated[int, msgspec.Meta(ge=8)] = 100
    # On SIGTERM, in-flight requests get this long to finish (new ones are refused 503
    # shutting_down meanwhile); those still running then are answered shutting_down.
    graceful_shutdown_s: Seconds = 30.0
    # Names this replica's reply stream; empty means "<hostname>-<pid>-<random>".
    instance_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{0,64}$")] = ""


class RedisSettings(_Section, frozen=True):
    # standalone: one server at `url` (a primary endpoint). cluster: a Redis Cluster found
    # through the seed `nodes`. sentinel: the primary that the Sentinels at `nodes` name
    # `master_name`, followed through failovers (see docs/architecture.md, "Redis modes").
    mode: Literal["standalone", "cluster", "sentinel"] = "standalone"
    # standalone only: the server (redis:// or rediss:// for TLS; may carry a password).
    url: str = "redis://127.0.0.1:6379/0"
    # cluster: seed nodes; sentinel: the Sentinels. "host:port" comma-separated.
    nodes: Annotated[str, msgspec.Meta(pattern=r"^([^,:\s]+:\d{1,5}(,[^,:\s]+:\d{1,5})*)?$")] = ""
    master_name: Annotated[str, msgspec.Meta(min_length=1)] = "mymaster"
    # cluster and sentinel: the data nodes' ACL user and password, and the Sentinels'
    # password. Never write passwords here: API_ROUTER__REDIS__PASSWORD and
    # API_ROUTER__REDIS__SENTINEL_PASSWORD (the chart takes them from a Secret).
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    # cluster and sentinel: TLS to the data nodes (and to the Sentinels).
    tls: bool = False
    # Every key the service writes starts with this prefix (see keyspace.py).
    key_prefix: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{1,32}$")] = "api-router"
    # Per-command socket timeout; must exceed the 1 s blocking reads.
    socket_timeout_s: Annotated[float, msgspec.Meta(gt=1)] = 3.0
    connect_timeout_s: Seconds = 1.0
    max_connections: Annotated[int, msgspec.Meta(ge=4)] = 512

    def __post_init__(self) -> None:
        if self.mode != "standalone" and not self.nodes:
            raise ValueError(f"redis.nodes is required in {self.mode} mode")

    @property
    def node_addresses(self) -> list[tuple[str, int]]:
        """``nodes`` as (host, port) pairs."""
        pairs = (node.rpartition(":") for node in self.nodes.split(",") if node)
        return [(host, int(port)) for host, _, port in pairs]


class AuthSettings(_Section, frozen=True):
    # Server secret under which API key secrets are hashed (HMAC-SHA256). Set it through
    # API_ROUTER__AUTH__PEPPER; never commit it. Required to serve or to create keys.
    pepper: Annotated[str, msgspec.Meta(min_length=32)] | None = None
    # Key-encryption key of the signing secrets (AES-256-GCM): base64 of 32 random bytes,
    # e.g. `openssl rand -base64 32`. Set it through API_ROUTER__AUTH__KEK; never commit it.
    # Required to serve or to create keys: there is no plain-text fallback.
    kek: str | None = None
    # Key records are cached in-process this long (misses too, so junk keys stay cheap).
    # Changes reach every replica at once through Redis pub/sub; while a replica's
    # subscription is down it caches for at most 1 s instead (see docs/architecture.md).
    key_cache_ttl_s: Seconds = 5.0
    # A signature's `created` may differ from the gateway's clock by at most this much.
    max_clock_skew_s: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 300
    # A nonce is remembered per key this long; at least twice the skew, so a signature
    # cannot outlive the memory of its nonce.
    nonce_window_s: Annotated[int, msgspec.Meta(ge=2, le=86_400)] = 600

    def __post_init__(self) -> None:
        if self.nonce_window_s < 2 * self.max_clock_skew_s:
            raise ValueError("auth.nonce_window_s must be at least twice auth.max_clock_skew_s")


class DispatchSettings(_Section, frozen=True):
    # No `accepted` event within this time: 504 upstream_timeout.
    accept_timeout_s: Seconds = 2.0
    # No `done` within this time of arrival: 504 upstream_timeout. Also the job's deadline.
    request_timeout_s: Seconds = 120.0
    # No event from the worker for this long after `accepted`, whole answer or stream: the
    # attempt is lost (its worker taken for dead), cancelled and, if nothing has reached
    # the client yet, handed to the next node. Workers write a keepalive every 2 s while
    # their backend works, so this only has to outlast that. (Was stream.idle_timeout_s.)
    idle_timeout_s: Annotated[float, msgspec.Meta(ge=3)] = 10.0
    # Jobs waiting or running on one node; a node at the limit counts as full.
    node_backlog_limit: Annotated[int, msgspec.Meta(ge=1)] = 64


class StreamSettings(_Section, frozen=True):
    # A comment line is sent to a streaming client after this long without output, so
    # proxies keep an idle connection (a long prompt being read) open.
    heartbeat_s: Seconds = 15.0
    # Worker events held per streaming request; a client so far behind that they fill
    # up is cut off (slow_reader): memory per request stays bounded.
    buffer_events: Annotated[int, msgspec.Meta(ge=8)] = 256
    # A single write to a streaming client blocked this long cuts the client off too.
    write_timeout_s: Seconds = 10.0


class HealthSettings(_Section, frozen=True):
    # A node is fresh when its worker reported within this many seconds.
    fresh_s: Seconds = 15.0
    max_temp_celsius: float = 75.0
    max_ram_percent: Percent = 90.0
    # A node excluded for heat or memory comes back only below the threshold minus these,
    # so a node hovering at the line does not flap in and out of the candidates.
    temp_margin_celsius: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    ram_margin_percent: Percent = 5.0
    # How often each replica re-reads the health registry (routing never reads Redis).
    refresh_interval_s: Seconds = 1.0
    # Entries of nodes silent for this long are removed from the registry.
    forget_after_s: Seconds = 600.0


class RoutingSettings(_Section, frozen=True):
    # Attempts per request in all (the first one included), each on a node not yet tried.
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=10)] = 3
    # Full-jitter backoff before retry n (n = 1, 2, ...): uniform in [0, min(cap, base * 2^n)].
    backoff_base_s: Seconds = 0.1
    backoff_cap_s: Seconds = 5.0
    # Retries may not exceed this share of requests over the sliding window, per replica...
    retry_budget_ratio: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.2
    retry_budget_window_s: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 60
    # ...except that this many retries per window are always allowed, so a quiet replica
    # (a handful of requests a minute) can still fail over.
    retry_budget_min_retries: Annotated[int, msgspec.Meta(ge=0)] = 10
    # Circuit breaker per node and replica: open after this many consecutive failures,
    # half-open (one probe request) after open_s.
    breaker_failures: Annotated[int, msgspec.Meta(ge=1)] = 5
    breaker_open_s: Seconds = 30.0
    # Routing overrides are pushed by pub/sub and also re-read this often (a missed message
    # or a TTL expiry is seen within this long).
    overrides_refresh_s: Seconds = 1.0


class DirectNode(_Section, frozen=True):
    """A backend the gateway calls itself (``transport: http``): a datacenter server that
    the gateway can reach, so that no worker or Redis stream sits in between."""

    node_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
    # The server's base URL (an OpenAI-compatible server's may end in /v1).
    base_url: Annotated[str, msgspec.Meta(pattern=r"^https?://")]
    # The API it speaks: the backend adapter the gateway calls it through.
    flavour: Literal["ollama", "openai"] = "openai"
    pool: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "direct"
    # Its share of its pool's traffic against the pool's other nodes (all 1: even).
    weight: Annotated[float, msgspec.Meta(gt=0, le=1000)] = 1.0
    # Requests this gateway has in flight to it at most (also its connection limit); a
    # node at the limit is skipped as full.
    max_concurrency: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 32
    # Its API key, if it wants one: from this environment variable (read at start) or
    # this file (a mounted secret, re-read when it changes). Never in this file itself.
    api_key_env: str | None = None
    api_key_file: str | None = None

    def __post_init__(self) -> None:
        if self.api_key_env is not None and self.api_key_file is not None:
            raise ValueError("a direct node takes api_key_env or api_key_file, not both")


class DirectSettings(_Section, frozen=True):
    # The direct nodes (an environment override gives them as a JSON list).
    nodes: list[DirectNode] = msgspec.field(default_factory=list)
    # How often a direct node is probed (its model list; with Ollama, its loaded models)
    # by the one replica that holds its probe lease.
    probe_interval_s: Seconds = 2.0
    # A probe not answered within this counts as a failure (for the node's breaker).
    probe_timeout_s: Seconds = 2.0
    # Time to open a new connection to a direct node (inside the request's deadline).
    connect_timeout_s: Seconds = 1.0

    def __post_init__(self) -> None:
        ids = [node.node_id for node in self.nodes]
        if len(set(ids)) != len(ids):
            raise ValueError("direct.nodes has two nodes with the same node_id")


class LastKnownGoodSettings(_Section, frozen=True):
    # Where each gateway keeps what it needs to serve its direct nodes if it starts while
    # Redis is away: the routing overrides in force and the API keys it has verified, as
    # Redis last held them (secrets only hashed or sealed). One file per gateway process.
    path: str = ".run/last-known-good.sqlite"
    # What is older than this (since it was last read from Redis) is not trusted.
    max_age_s: Seconds = 86_400.0
    # How often the file is rewritten, off the request path.
    save_interval_s: Seconds = 5.0


class KafkaSettings(_Section, frozen=True):
    # The broker usage records go to; `api-router dev` points it at its own broker.
    bootstrap_servers: str = "127.0.0.1:9092"
    usage_topic: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{1,249}$")] = (
        "api-router.usage.v1"
    )
    # Used when the gateway creates the topic at start-up (never left to auto-creation).
    topic_partitions: Annotated[int, msgspec.Meta(ge=1)] = 6
    topic_replication: Annotated[int, msgspec.Meta(ge=1)] = 1
    # No duplicates from the producer's own retries. `api-router dev` and the tests turn it
    # off: their broker (Tansu) does not support it.
    enable_idempotence: bool = True
    linger_ms: Annotated[int, msgspec.Meta(ge=0)] = 5
    # A batch not acknowledged within this time counts as failed; the producer is replaced.
    send_timeout_s: Seconds = 5.0


class UsageSettings(_Section, frozen=True):
    # Where the disk spool (SQLite, via sqlitedict, and its journal files) lives; one
    # directory per gateway process.
    spool_dir: str = ".run/usage-spool"
    # Journaled records are committed to the spool's SQLite file this often (each one is
    # on disk, in the journal, before its response's last byte: see usage/journal.py).
    batch_window_ms: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    # Records waiting in memory for the next spool commit; beyond it the full policy applies.
    queue_max: Annotated[int, msgspec.Meta(ge=1)] = 10_000
    # Records the spool holds at most (records not yet acknowledged by Kafka).
    spool_max_records: Annotated[int, msgspec.Meta(ge=1)] = 1_000_000
    # At the cap: refuse new billable requests with 503, or drop the oldest (counted).
    on_spool_full: Literal["refuse", "drop_oldest"] = "refuse"
    # Records per Kafka batch when shipping the spool.
    ship_batch: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500
    # How long graceful shutdown tries to ship what is spooled before leaving it for next run.
    shutdown_flush_s: Seconds = 5.0


class AuditSettings(_Section, frozen=True):
    # The durable trail: request audit records and admin actions go through the usage spool
    # to this topic; `api-router audit-sink` stores them in PostgreSQL (docs/architecture.md).
    topic: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{1,249}$")] = "api-router.audit.v1"
    # The PostgreSQL the sink writes and the gateways' audit API reads (libpq URL; put the
    # password in API_ROUTER__AUDIT__DATABASE_URL or use a .pgpass). None: the audit API
    # answers from the recent Redis window only and the listing is unavailable (503).
    database_url: str | None = None
    # Days of audit records kept in PostgreSQL; older day partitions are dropped whole.
    retention_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 30
    # How long each request's audit record (and each admin action) stays in Redis, so a
    # lookup right after an answer works before the sink has stored it.
    recent_window_s: Annotated[int, msgspec.Meta(ge=10, le=86_400)] = 600
    # The sink's Kafka consumer group and the records it writes per database transaction.
    sink_group: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{1,249}$")] = (
        "api-router-audit-sink"
    )
    sink_batch: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1_000
    # Connections per gateway for audit reads.
    read_pool_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 4


class IdempotencySettings(_Section, frozen=True):
    # How long the final answer to a request with an Idempotency-Key is kept (and replayed
    # to a retry with the same key); the key can be used again for another request after it.
    retention_s: Annotated[int, msgspec.Meta(ge=60)] = 24 * 3600
    # A client's `Prefer: wait=N` on a retry whose first request still runs waits at most
    # this long for its answer (then 409 idempotency_in_progress).
    max_wait_s: Seconds = 60.0


class JobsSettings(_Section, frozen=True):
    # How long an asynchronous job (`Prefer: respond-async`) and its result are kept once
    # it has ended (while it runs, it is kept).
    retention_s: Annotated[int, msgspec.Meta(ge=1)] = 24 * 3600
    # How often each replica looks for jobs whose replica died (their lease ran out).
    sweep_interval_s: Seconds = 2.0


class LimitsSettings(_Section, frozen=True):
    # The policies file (plans, tenants, model prices); none means no limits at all.
    # A relative path is read from the gateway's working directory.
    policies_file: str | None = None
    # How often the file is checked for changes (SIGHUP reloads it at once).
    reload_interval_s: Seconds = 1.0
    # Admission gives Redis this long (connect and answer, no retries) before the plan's
    # on_store_error applies: the gateway answers, it never hangs on its limiter.
    store_timeout_s: Seconds = 0.25
    # A concurrency lease outlives the request deadline by this much, then expires by itself,
    # so a crashed gateway leaks no in-flight slot for longer than the deadline plus this.
    lease_grace_s: Seconds = 5.0


class TelemetrySettings(_Section, frozen=True):
    service_name: str = "api-router"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Where spans go: nowhere, stderr, or an OTLP/HTTP collector at otlp_endpoint.
    traces_exporter: Literal["none", "console", "otlp"] = "none"
    otlp_endpoint: str = "http://127.0.0.1:4318/v1/traces"
    # Per-tenant metrics carry a `tenant` label; off: they carry none (totals only). At
    # most max_tenants distinct tenants get their own value per process, the rest `_other`,
    # so metric series stay bounded however many tenants there are.
    tenant_label: bool = True
    max_tenants: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    # How often this month's spend of budgeted tenants is re-read for the metrics.
    budget_refresh_s: Seconds = 15.0


class Settings(_Section, frozen=True):
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    redis: RedisSettings = msgspec.field(default_factory=RedisSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    dispatch: DispatchSettings = msgspec.field(default_factory=DispatchSettings)
    stream: StreamSettings = msgspec.field(default_factory=StreamSettings)
    health: HealthSettings = msgspec.field(default_factory=HealthSettings)
    routing: RoutingSettings = msgspec.field(default_factory=RoutingSettings)
    direct: DirectSettings = msgspec.field(default_factory=DirectSettings)
    last_known_good: LastKnownGoodSettings = msgspec.field(default_factory=LastKnownGoodSettings)
    kafka: KafkaSettings = msgspec.field(default_factory=KafkaSettings)
    usage: UsageSettings = msgspec.field(default_factory=UsageSettings)
    audit: AuditSettings = msgspec.field(default_factory=AuditSettings)
    idempotency: IdempotencySettings = msgspec.field(default_factory=IdempotencySettings)
    jobs: JobsSettings = msgspec.field(default_factory=JobsSettings)
    limits: LimitsSettings = msgspec.field(default_factory=LimitsSettings)
    telemetry: TelemetrySettings = msgspec.field(default_factory=TelemetrySettings)
