"""The policies in force, reloaded when the file changes or on SIGHUP.

A reload swaps one reference: a request in flight keeps the limits it was admitted under,
the next request sees the new ones. An invalid new file is rejected with a log line and
the old policies stay.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from api_router.config.loader import ConfigError
from api_router.config.policies import Policies, load_policies
from api_router.keyspace import Keyspace
from api_router.limiter.limit_set import LimitSet, resolve

log = logging.getLogger(__name__)

# Resolved limit sets kept per policies version; bounded, since keys come and go.
_MAX_CACHED = 100_000


class PolicySource:
    def __init__(self, keys: Keyspace, path: str | None, reload_interval_s: float = 1.0) -> None:
        """Loads ``path`` now: an invalid file at start-up is a ``ConfigError``.
        Without a path there are no limits at all."""
        self._keys = keys
        self._path = Path(path) if path is not None else None
        self._interval_s = reload_interval_s
        self._wake = asyncio.Event()
        self._stamp = self._file_stamp()
        self._install(load_policies(self._path) if self._path is not None else None)

    @property
    def policies(self) -> Policies | None:
        return self._policies

    def limits_for(self, tenant: str, key_id: str, model: str) -> LimitSet | None:
        """The limits of this caller and model; None when no policies file is configured.
        Raises ``NoPlan`` for a tenant without a plan."""
        policies = self._policies
        if policies is None:
            return None
        # Model names come from clients: only configured names get their own cache entry.
        model_key = model if model in self._models else ""
        cache_key = (tenant, key_id, model_key)
        limits = self._cache.get(cache_key)
        if limits is None:
            limits = resolve(policies, self._keys, tenant, key_id, model_key)
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[cache_key] = limits
        return limits

    def request_reload(self) -> None:
        """Reload now (the SIGHUP handler); safe to call from a signal handler."""
        self._wake.set()

    def reload(self) -> bool:
        """Read the file again; keep the old policies when the new ones are invalid."""
        if self._path is None:
            return False
        self._stamp = self._file_stamp()
        try:
            policies = load_policies(self._path)
        except ConfigError as exc:
            log.error(
                "policies file rejected; the previous policies stay in force",
                extra={"path": str(self._path), "error_path": exc.path, "reason": exc.reason},
            )
            return False
        self._install(policies)
        log.info("policies reloaded", extra={"path": str(self._path)})
        return True

    async def run(self) -> None:
        """Watch the file (every ``reload_interval_s``) and answer reload requests."""
        while True:
            try:
                async with asyncio.timeout(self._interval_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            woken = self._wake.is_set()
            self._wake.clear()
            if woken or self._file_stamp() != self._stamp:
                self.reload()

    def _install(self, policies: Policies | None) -> None:
        models: set[str] = set()
        if policies is not None:
            models.update(policies.models)
            for plan in policies.plans.values():
                models.update(plan.models)
        # Cache and model names first, then the policies: a request never mixes versions.
        self._cache: dict[tuple[str, str, str], LimitSet] = {}
        self._models = frozenset(models)
        self._policies = policies

    def _file_stamp(self) -> tuple[int, int, int] | None:
        if self._path is None:
            return None
        try:
            stat = os.stat(self._path)
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)
