"""The usage journal: the front of the disk spool, written on the request path.

Each usage record is appended to the current journal file with one ``write(2)`` while its
request is answered, before the response's last byte is sent. Once ``write`` returns, the
record is in the kernel's page cache: it survives a SIGKILL (or any crash) of the gateway
process. There is no fsync per request, so a power loss or kernel crash can still lose the
writes the OS had not flushed yet (as it can lose SQLite's last commits: the spool runs
with ``synchronous=OFF``).

The exporter rotates the journal every batch window: a new file takes new records while
the old file's records are committed to the spool, then the old file is deleted. Files a
killed process left behind are read back at the next start (:func:`read_journal`) and
committed to the spool; records are keyed by ``record_id`` there, so one that was both
journaled and spooled is kept once.

One spool directory per gateway process: the journal files are not shared.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import msgspec

log = logging.getLogger(__name__)

_PREFIX = "usage-journal-"
_SUFFIX = ".jsonl"


class JournalError(Exception):
    """A record could not be written to the journal (a full disk, a broken directory)."""


class _Keyed(msgspec.Struct):
    record_id: str


_keyed = msgspec.json.Decoder(_Keyed)


class UsageJournal:
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self.path, self._fd = self._open()
        self._size = 0

    def append(self, line: bytes) -> None:
        """Write one record (a JSON text ending in a newline) with one ``write(2)``."""
        try:
            written = os.write(self._fd, line)
        except OSError as exc:
            raise JournalError(f"usage journal write failed: {exc}") from None
        if written != len(line):  # a full disk: cut the partial line off, keep lines whole
            self._cut_back()
            raise JournalError(f"usage journal write cut short ({written} of {len(line)} bytes)")
        self._size += written

    def rotate(self) -> Path:
        """Continue in a new file; returns the finished one (the caller deletes it once its
        records are safe elsewhere). The current file is kept if no new one can be opened."""
        try:
            path, fd = self._open()
        except OSError as exc:
            raise JournalError(f"usage journal rotation failed: {exc}") from None
        finished, old_fd = self.path, self._fd
        self.path, self._fd, self._size = path, fd, 0
        os.close(old_fd)
        return finished

    def close(self) -> None:
        os.close(self._fd)

    def _open(self) -> tuple[Path, int]:
        # Nanosecond names: unique, and sorted as written (leftovers are replayed in order).
        path = self._directory / f"{_PREFIX}{time.time_ns():020d}{_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        return path, fd

    def _cut_back(self) -> None:
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            log.error("usage journal could not cut a partial line", extra={"path": str(self.path)})


def leftover_journals(directory: Path) -> list[Path]:
    """Journal files in ``directory``, oldest first (call before opening a journal there)."""
    return sorted(directory.glob(f"{_PREFIX}*{_SUFFIX}"))


def read_journal(path: Path) -> list[tuple[str, str]]:
    """The ``(record_id, json)`` pairs of a journal file. A line that does not decode (only
    a crash of the whole machine can leave one, at the end) is skipped and logged."""
    records = []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        try:
            records.append((_keyed.decode(line).record_id, line.decode()))
        except (msgspec.DecodeError, UnicodeDecodeError):
            where = {"path": str(path), "line": number}
            log.error("skipping an unreadable usage journal line", extra=where)
    return records


def discard(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
