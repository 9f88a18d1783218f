"""Asynchronous jobs in Redis: one hash per job, and the set of jobs in flight.

A job is submitted by one replica, which owns it and renews its lease while it runs it
(``JOB_RENEW_S``). If that replica dies, its lease runs out (``JOB_LEASE_S``) and any
replica adopts the job and runs it again from its stored request. The owner stores the
answer when the job ends; a DELETE marks it cancelled, which its owner sees at its next
renewal. Every replica reads a job's state and answer from the hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

from api_router.idempotency.stored_answer import StoredAnswer, decode_answer, encode_answer
from api_router.keyspace import JOB_LEASE_S, Keyspace
from api_router.redis_store import Redis, lua_script, store_errors

JobState = Literal["queued", "running", "done", "cancelled"]
_LEASE_MS = int(JOB_LEASE_S * 1000)
_SWEEP_BATCH = 16


@dataclass(frozen=True, slots=True)
class JobRequest:
    """What a job needs to run on any replica: who asked, and the request as sent."""

    request_id: str
    tenant: str
    key_id: str
    auth_method: Literal["api_key", "signature"]
    body: bytes
    session: str  # the X-Session-Id header ("" when absent)
    created: int  # epoch seconds


@dataclass(frozen=True, slots=True)
class JobView:
    """A job as its tenant sees it."""

    request_id: str
    tenant: str
    state: JobState
    created: int
    answer: StoredAnswer | None


class JobStore:
    def __init__(self, redis: Redis, keys: Keyspace, retention_s: int) -> None:
        self._redis = redis
        self._keys = keys
        self._retention_s = retention_s
        self._in_flight_ttl_s = retention_s + int(JOB_LEASE_S)
        self._lease = redis.register_script(lua_script(__package__, "lease"))
        self._end = redis.register_script(lua_script(__package__, "end"))

    async def create(self, job: JobRequest, owner: str) -> None:
        fields: list[str | bytes | int] = [
            "tenant",
            job.tenant,
            "key_id",
            job.key_id,
            "auth",
            job.auth_method,
            "body",
            job.body,
            "session",
            job.session,
            "created",
            job.created,
        ]
        name = self._keys.job(job.request_id)
        with store_errors("the job store"):
            _, expiry = await self._lease(
                keys=[name], args=["create", owner, _LEASE_MS, self._in_flight_ttl_s, *fields]
            )
            await self._redis.zadd(self._keys.active_jobs, {job.request_id: expiry})

    async def renew(self, request_id: str, owner: str, state: JobState | None = None) -> str:
        """Extend ``owner``'s lease (and set ``state``); the job's state afterwards, or
        ``lost`` / ``gone``: the owner must stop running it."""
        with store_errors("the job store"):
            outcome, expiry = await self._lease(
                keys=[self._keys.job(request_id)],
                args=["renew", owner, _LEASE_MS, self._in_flight_ttl_s, state or ""],
            )
            if expiry:
                await self._redis.zadd(self._keys.active_jobs, {request_id: expiry})
        return bytes(outcome).decode()

    async def finish(self, request_id: str, owner: str, answer: StoredAnswer) -> bool:
        """Store the job's answer; False when ``owner`` no longer held it (cancelled, or
        taken over after a stall), in which case the answer is dropped."""
        args: list[str | bytes | int] = ["finish", owner, encode_answer(answer), self._retention_s]
        with store_errors("the job store"):
            ended = await self._end(keys=[self._keys.job(request_id)], args=args)
            await self._redis.zrem(self._keys.active_jobs, request_id)
        return bool(ended == b"done")

    async def cancel(self, request_id: str, tenant: str) -> str:
        """Cancel the tenant's job: ``cancelled``, the state it had already ended in, or
        ``missing`` (no such job of this tenant)."""
        args: list[str | bytes | int] = ["cancel", tenant, b"", self._retention_s]
        with store_errors("the job store"):
            outcome = await self._end(keys=[self._keys.job(request_id)], args=args)
            if outcome == b"cancelled":
                await self._redis.zrem(self._keys.active_jobs, request_id)
        return bytes(outcome).decode()

    async def get(self, request_id: str) -> JobView | None:
        with store_errors("the job store"):
            fields: list[Any] = await self._redis.hmget(
                self._keys.job(request_id), ["tenant", "state", "created", "answer"]
            )
        tenant, state, created, answer = fields
        if tenant is None or state is None:
            return None
        return JobView(
            request_id=request_id,
            tenant=tenant.decode(),
            state=cast(JobState, state.decode()),
            created=int(created or 0),
            answer=None if answer is None else decode_answer(answer),
        )

    async def adopt_orphans(self, owner: str) -> list[JobRequest]:
        """Take over jobs whose owner's lease ran out (at most a few per call); forget
        jobs in the set that have ended or expired."""
        with store_errors("the job store"):
            seconds, micros = await self._redis.time()
            now_ms = seconds * 1000 + micros // 1000
            due: list[Any] = await self._redis.zrangebyscore(
                self._keys.active_jobs, "-inf", now_ms, start=0, num=_SWEEP_BATCH
            )
        adopted: list[JobRequest] = []
        for raw_id in due:
            request_id = raw_id.decode()
            name = self._keys.job(request_id)
            with store_errors("the job store"):
                outcome, expiry = await self._lease(
                    keys=[name], args=["adopt", owner, _LEASE_MS, self._in_flight_ttl_s]
                )
                if outcome in (b"adopted", b"alive"):
                    await self._redis.zadd(self._keys.active_jobs, {request_id: expiry})
                else:
                    await self._redis.zrem(self._keys.active_jobs, request_id)
                    continue
                if outcome == b"alive":
                    continue
                fields: list[Any] = await self._redis.hmget(
                    name, ["tenant", "key_id", "auth", "body", "session", "created"]
                )
            adopted.append(_request(request_id, fields))
        return adopted


def _request(request_id: str, fields: list[bytes | None]) -> JobRequest:
    tenant, key_id, auth, body, session, created = (f or b"" for f in fields)
    return JobRequest(
        request_id=request_id,
        tenant=tenant.decode(),
        key_id=key_id.decode(),
        auth_method="signature" if auth == b"signature" else "api_key",
        body=body,
        session=session.decode(),
        created=int(created or 0),
    )
