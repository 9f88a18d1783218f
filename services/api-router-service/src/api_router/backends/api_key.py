"""Where a worker's backend key comes from: an environment variable, read once at start,
or a file (a mounted secret), read again when it changes, so that a rotated key is used
without a restart. Never from a job: a gateway cannot make a worker send a key anywhere.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

# How often a key file is looked at (one stat) for a change.
_RECHECK_S = 1.0


class ApiKeyError(ValueError):
    """The key's source is missing or empty."""


class ApiKeyFile:
    def __init__(self, path: Path, recheck_s: float = _RECHECK_S) -> None:
        self._path = path
        self._recheck_s = recheck_s
        self._key = ""
        self._seen: tuple[int, int] | None = None
        self._checked_at = 0.0
        self._load()  # fails at start, not at the first request
        if not self._key:
            raise ApiKeyError(f"the API key file {path} is empty")

    def __call__(self) -> str:
        now = time.monotonic()
        if now - self._checked_at >= self._recheck_s:
            self._checked_at = now
            try:
                self._load()
            except ApiKeyError:
                pass  # mid-rotation (the secret's file swapped out): keep the last key
        return self._key

    def _load(self) -> None:
        try:
            status = self._path.stat()
            seen = (status.st_mtime_ns, status.st_ino)
            if seen != self._seen:
                key = self._path.read_text(encoding="utf-8").strip()
                if key:
                    self._key, self._seen = key, seen
        except OSError as exc:
            raise ApiKeyError(
                f"cannot read the API key file {self._path}: {exc.strerror}"
            ) from None


def key_from_env(name: str) -> str:
    key = os.environ.get(name, "").strip()
    if not key:
        raise ApiKeyError(f"the environment variable {name} holding the API key is not set")
    return key
