"""Every Redis key the gateway and the workers use, in one place.

``prefix`` comes from ``redis.key_prefix``. On Redis Cluster a key's slot is the CRC16 of
its ``{hash tag}`` when it has one, else of the whole key. Every Lua script's keys share
one tag, so each script runs on one node, atomically; there is no MULTI anywhere (the
cluster client refuses one). Each key's docstring says its slot:

=====================  =======================  =========================================
key                    slot                     touched together with
=====================  =======================  =========================================
job_stream(node)       ``{node}``               nothing else (bounded_add, ack_and_trim)
reply_stream(replica)  ``{replica}``            its cancel keys (emit, open_reply_stream)
cancel(...)            ``{replica}``            its reply stream (emit)
limit(tenant, ...)     ``{tenant}``             the tenant's other limits and budget
budget(tenant)         ``{tenant}``             the tenant's limits (admit, settle)
api_key(id)            the whole key            alone (swap_record); see ``tenant_keys``
tenant_keys(tenant)    the whole key            alone (written before the record)
tenants                the whole key            alone (written before ``tenant_keys``)
idempotency(digest)    ``{digest}``             alone (claim, settle)
job(request id)        ``{request id}``         alone (lease, end); ``active_jobs`` after
nonce, health, ...     the whole key            alone
=====================  =======================  =========================================

Creating a key touches three slots, so it is three steps in a safe order (the tenant, then
the tenant's key set, then the record: an interrupted creation leaves a listed id without
a record, which listings skip). Reads of many keys across slots (``get_many``) are
pipelines of single-key commands, split per node by the cluster client.

The two pub/sub channels (``key_events``, ``routing_changes``) are not keys: a ``PUBLISH``
on any node of a cluster is forwarded to every node, so a replica subscribed anywhere
hears it (``SPUBLISH`` would keep it within one shard; see docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass

# Name of the consumer group every worker of a node reads its job stream through.
WORKER_GROUP = "workers"


@dataclass(frozen=True, slots=True)
class Keyspace:
    prefix: str = "api-router"

    @property
    def health(self) -> str:
        """Hash node_id -> NodeHealth JSON. No TTL: a worker deletes its field on shutdown,
        and gateways remove fields silent for ``health.forget_after_s``. Single-key: its
        slot is the whole key's."""
        return f"{self.prefix}:health"

    def job_stream(self, node_id: str) -> str:
        """Stream of jobs for one node (group ``workers``). Never trimmed by length: only
        entries below the oldest pending one are removed, so no undelivered job is lost.
        Tagged by node so the bounded-add and ack-and-trim scripts run in one slot."""
        return f"{self.prefix}:req:{{{node_id}}}"

    def reply_stream(self, instance_id: str) -> str:
        """Stream of worker events for one gateway replica. The replica refreshes a TTL on it
        while alive (``REPLY_STREAM_TTL_S``) and trims what it has read; workers add with
        NOMKSTREAM, so a dead replica's stream is never recreated."""
        return f"{self.prefix}:reply:{{{instance_id}}}"

    @staticmethod
    def cancel(reply_stream: str, request_id: str, attempt: int) -> str:
        """Set when a replica abandons one attempt of a request; expires a minute after the
        request's deadline. Per attempt, so that abandoning attempt 1 on a node never
        cancels attempt 2 on another. Built from the reply stream's name so it shares that
        stream's hash tag: the worker checks it and writes ``accepted`` there in one script."""
        return f"{reply_stream}:cancel:{request_id}:{attempt}"

    def probe_lease(self, node_id: str) -> str:
        """The id of the replica that probes one direct node (``direct.nodes``); taken with
        ``SET NX PX`` and renewed by its holder each round, it expires three probe
        intervals after the holder's last round, so another replica takes over."""
        return f"{self.prefix}:probe-lease:{node_id}"

    @property
    def routing_overrides(self) -> str:
        """Hash override id -> Override JSON (admin routing overrides). No TTL on the hash:
        an override's own ``expires_at`` ends it, and replicas delete expired fields when
        they re-read the hash (every ``routing.overrides_refresh_s``). Single-key: written,
        then announced on ``routing_changes`` (two commands, no MULTI)."""
        return f"{self.prefix}:routing-overrides"

    @property
    def routing_changes(self) -> str:
        """Pub/sub channel: a message (the changed override ids) after every change to
        ``routing_overrides``, so replicas re-read it at once. Not a key; no TTL."""
        return f"{self.prefix}:routing-changes"

    def api_key(self, key_id: str) -> str:
        """KeyRecord JSON of one API key. No TTL: keys live until deleted. Untagged (keys
        are found by id alone, so the id's slot is the key's): written last on creation."""
        return f"{self.prefix}:key:{key_id}"

    def tenant_keys(self, tenant: str) -> str:
        """Set of the key ids of one tenant (listing keys without a scan). No TTL. Its own
        slot: an id is added before its record is written, so a listing may meet an id
        without a record (skipped), never a record without an id."""
        return f"{self.prefix}:tenant-keys:{tenant}"

    @property
    def key_events(self) -> str:
        """Pub/sub channel (not a key): the id of every key record that changed, published
        in the same script that writes it, so replicas drop their cached copy at once."""
        return f"{self.prefix}:key-events"

    @property
    def key_last_used(self) -> str:
        """Hash key_id -> epoch seconds of its last successful use. No TTL (one small field
        per key); each replica writes a key's field at most once a minute. Single-key."""
        return f"{self.prefix}:key-last-used"

    def nonce(self, key_id: str, nonce: str) -> str:
        """Seen marker of a signature nonce (``SET NX``); expires after
        ``auth.nonce_window_s``. Single-key, so no hash tag."""
        return f"{self.prefix}:nonce:{key_id}:{nonce}"

    def audit_record(self, request_id: str) -> str:
        """AuditRecord JSON of one request: the recent window, so a lookup right after the
        answer works before the audit sink has stored it in PostgreSQL; expires after
        ``audit.recent_window_s``. Single-key, so no hash tag."""
        return f"{self.prefix}:audit:{request_id}"

    @property
    def audit_admin(self) -> str:
        """Stream of AdminAction JSON (field ``action``), oldest first: the recent admin
        actions. Entries older than ``audit.recent_window_s`` are trimmed (MINID) on every
        write and the stream expires a window after its last write (PostgreSQL keeps them
        all). Single-key, so no hash tag."""
        return f"{self.prefix}:audit-admin"

    def limit(self, tenant: str, scope: str, kind: str) -> str:
        """State of one limit of one tenant. ``scope`` is ``tenant``, ``key:<key id>`` or
        ``model:<model>``; ``kind`` is ``requests`` or ``tokens`` (a token bucket: hash
        ``tokens``/``ts``, expiring once it would be full again, since a missing bucket
        reads as full) or ``lease`` (sorted set of request ids scored by lease expiry,
        expiring with its last lease). Tagged by tenant: admission checks and debits every
        limit of a request, and its tenant's budget, in one script on one slot."""
        return f"{self.prefix}:limit:{{{tenant}}}:{scope}:{kind}"

    def budget(self, tenant: str) -> str:
        """Hash of one tenant's spend and usage per calendar month (UTC, from Redis time):
        ``YYYY-MM`` -> the budget's spend (tokens, or millionths of the currency; the
        counter the budget is enforced on, reservations of requests in flight included),
        and ``YYYY-MM:<model>:<counter>`` -> requests, prompt_tokens, completion_tokens
        and cost (millionths) of what that model was charged once settled. Fields of
        months older than ``USAGE_MONTHS_KEPT`` are deleted when a new month's first
        request is counted; the hash expires ``USAGE_TTL_S`` (longer than the kept months)
        after a budget write or a model's first request of a month, whichever was last.
        Tagged by tenant, like the limits it is checked with."""
        return f"{self.prefix}:budget:{{{tenant}}}"

    def idempotency(self, scope_digest: str) -> str:
        """One Idempotency-Key of one tenant (``scope_digest``: a hash of both, so no
        character of the client's key reaches a key name or a hash tag). A string: the
        state (running / done), the request's fingerprint, the claim's owner and then the
        running request's id or the stored answer. While running it expires after the
        request deadline plus ``IDEMPOTENCY_LEASE_GRACE_S`` (a gateway that died mid-request
        frees the key); once done, after ``idempotency.retention_s``. Tagged by the digest:
        single-key scripts, spread over every slot."""
        return f"{self.prefix}:idem:{{{scope_digest}}}"

    def job(self, request_id: str) -> str:
        """Hash of one asynchronous job (``Prefer: respond-async``): its tenant and key, the
        request body, state, owner replica and owner lease, and once finished its stored
        answer. Expires ``jobs.retention_s`` after it was submitted, and again that long
        after it finished. Tagged by the request id: single-key scripts."""
        return f"{self.prefix}:job:{{{request_id}}}"

    @property
    def active_jobs(self) -> str:
        """Sorted set request_id -> owner lease expiry (epoch ms) of the asynchronous jobs
        not yet finished, so that a replica finds jobs whose owner died without a scan.
        Bounded by the jobs in flight: a job leaves it when it finishes, is cancelled, or
        is found gone. No TTL (it empties itself)."""
        return f"{self.prefix}:jobs-active"

    @property
    def tenants(self) -> str:
        """Set of the tenants that have had a key (the admins' tenant listing, without a
        scan). No TTL: one small member per tenant. Single-key, written first on creation."""
        return f"{self.prefix}:tenants"


# A replica refreshes its reply stream's TTL on every read (at least once a second), so
# the stream outlives any pause of the replica but vanishes soon after it is gone.
REPLY_STREAM_TTL_S = 300

# A running Idempotency-Key claim outlives its request's deadline by this much: room for the
# answer to be written and for a graceful shutdown, yet a dead gateway's claim ends soon.
IDEMPOTENCY_LEASE_GRACE_S = 60

# The replica running an asynchronous job renews its lease this often (and sees a DELETE
# then); a lease not renewed for JOB_LEASE_S means the replica is gone, and another one
# takes the job over.
JOB_RENEW_S = 1.0
JOB_LEASE_S = 10.0

# The months a tenant's usage hash keeps: this one and the twelve before it.
USAGE_MONTHS_KEPT = 13
# A little over a year: an idle tenant's hash keeps its kept months, then goes away.
USAGE_TTL_S = 400 * 86_400
