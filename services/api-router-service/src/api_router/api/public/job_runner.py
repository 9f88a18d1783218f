"""This replica's asynchronous jobs: the ones it accepted and the ones it took over.

For each job it owns, the runner renews the job's lease every ``JOB_RENEW_S`` while the
job runs (``job_run.run_job``) and stores its answer at the end. A renewal that finds the
job cancelled (a DELETE on any replica) cancels the run: the worker's backend call is
aborted and the tenant is charged what was generated. Every ``jobs.sweep_interval_s`` the
runner adopts jobs whose owner's lease ran out (that replica died) and runs them again
from their stored request: the job survives its gateway.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import Scope

from api_router.api.public.job_run import HandedOver, run_job
from api_router.errors import StoreUnavailable
from api_router.idempotency.stored_answer import StoredAnswer
from api_router.jobs.job_store import JobRequest, JobState
from api_router.keyspace import JOB_RENEW_S
from api_router.services import Services

log = logging.getLogger(__name__)

_FINISH_TRIES = 5  # storing an answer is retried (once a second) before it is given up


class JobRunner:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._store = services.jobs
        self._owner = services.instance_id
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    async def submit(self, job: JobRequest) -> None:
        """Record ``job`` (this replica owns it) and start it."""
        await self._store.create(job, self._owner)
        self._start(job)

    async def sweep(self) -> None:
        """Forever: take over the jobs of replicas that died."""
        while True:
            await asyncio.sleep(self._services.settings.jobs.sweep_interval_s)
            try:
                orphans = await self._store.adopt_orphans(self._owner)
            except StoreUnavailable:
                continue
            for job in orphans:
                if job.request_id not in self._runs:
                    log.info("job taken over", extra={"request_id": job.request_id})
                    self._start(job)

    async def stop(self) -> None:
        """Shutdown: stop every run without charging or storing it; each job's lease runs
        out and another replica takes it over."""
        self._stopping = True
        runs = list(self._runs.values())
        for run in runs:
            run.cancel()
        if runs:
            await asyncio.wait(runs)

    def _start(self, job: JobRequest) -> None:
        run = asyncio.create_task(self._own(job), name=f"job {job.request_id}")
        self._runs[job.request_id] = run
        run.add_done_callback(lambda _: self._runs.pop(job.request_id, None))

    async def _own(self, job: JobRequest) -> None:
        async def running() -> None:
            await self._renew(job, "running")

        work = asyncio.create_task(run_job(self._services, job, running, self._is_stopping))
        try:
            while not (await asyncio.wait({work}, timeout=JOB_RENEW_S))[0]:
                if await self._renew(job) not in ("queued", "running"):
                    work.cancel()  # cancelled by its tenant, or no longer ours
                    break
            await asyncio.wait({work})
        finally:
            if not work.done():  # this task was cancelled: the replica is stopping
                work.cancel()
                await asyncio.wait({work})
        if work.cancelled() or isinstance(work.exception(), HandedOver):
            return
        await self._finish(job, work)

    async def _finish(self, job: JobRequest, work: asyncio.Task[StoredAnswer]) -> None:
        answer = work.result()
        for _ in range(_FINISH_TRIES):
            try:
                if not await self._store.finish(job.request_id, self._owner, answer):
                    log.info("job answer dropped", extra={"request_id": job.request_id})
                return
            except StoreUnavailable:
                await asyncio.sleep(1.0)
        log.error("job answer lost: Redis unavailable", extra={"request_id": job.request_id})

    async def _renew(self, job: JobRequest, state: JobState | None = None) -> str:
        try:
            return await self._store.renew(job.request_id, self._owner, state)
        except StoreUnavailable:
            return "running"  # keep going; the lease may lapse and the job run twice

    def _is_stopping(self) -> bool:
        return self._stopping


JOB_RUNNER_STATE = "job_runner"


def job_runner_of(scope: Scope) -> JobRunner:
    runner: JobRunner = getattr(scope["app"].state, JOB_RUNNER_STATE)
    return runner
