"""The usage journal: records are on disk when `record` returns, rotation splits them by
batch, and what a killed process left is committed to the spool at the next start."""

from __future__ import annotations

import time
from pathlib import Path

from api_router.config.settings import KafkaSettings, UsageSettings
from api_router.usage.exporter import UsageExporter
from api_router.usage.journal import UsageJournal, leftover_journals, read_journal
from api_router.usage.record import UsageFacts, UsageRecord, build_records, usage_of

# Nothing listens on port 1: shipping fails at once and records stay on disk.
NO_KAFKA = KafkaSettings(bootstrap_servers="127.0.0.1:1")


def line(record_id: str) -> bytes:
    return b'{"record_id":"%s","n":1}\n' % record_id.encode()


def test_rotation_splits_records_by_file_oldest_first(tmp_path: Path) -> None:
    journal = UsageJournal(tmp_path)
    journal.append(line("r1"))
    journal.append(line("r2"))
    finished = journal.rotate()
    journal.append(line("r3"))
    journal.close()
    assert leftover_journals(tmp_path) == [finished, journal.path]
    assert read_journal(finished) == [
        ("r1", '{"record_id":"r1","n":1}'),
        ("r2", '{"record_id":"r2","n":1}'),
    ]
    assert [rid for rid, _ in read_journal(journal.path)] == ["r3"]


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    journal = UsageJournal(tmp_path)
    journal.append(line("r1"))
    journal.close()
    with journal.path.open("ab") as file:  # what a power loss mid-write can leave
        file.write(b'{"record_id":"r2","n"')
    assert [rid for rid, _ in read_journal(journal.path)] == ["r1"]


async def test_a_record_is_on_disk_when_record_returns(tmp_path: Path) -> None:
    exporter = UsageExporter(NO_KAFKA, _settings(tmp_path), "test", "audit")
    record = _record()
    exporter.record(record)
    [journal] = leftover_journals(tmp_path)
    assert [rid for rid, _ in read_journal(journal)] == [record.record_id]
    await exporter.aclose()
    assert leftover_journals(tmp_path) == []  # spooled, so the journal file is gone
    again = UsageExporter(NO_KAFKA, _settings(tmp_path), "test", "audit")
    assert again.depth == 1
    await again.aclose()


async def test_journals_a_killed_process_left_are_spooled_at_start(tmp_path: Path) -> None:
    for batch in (["r1", "r2"], ["r2", "r3"]):  # r2 twice: a record is kept once
        journal = UsageJournal(tmp_path)
        for record_id in batch:
            journal.append(line(record_id))
        journal.close()
    exporter = UsageExporter(NO_KAFKA, _settings(tmp_path), "test", "audit")
    assert exporter.depth == 3
    assert len(leftover_journals(tmp_path)) == 1  # only the new process's own file
    await exporter.aclose()


def _settings(directory: Path) -> UsageSettings:
    return UsageSettings(spool_dir=str(directory), shutdown_flush_s=0.1)


def _record() -> UsageRecord:
    facts = UsageFacts(tenant="acme", key_id="k1", model="m")
    audit = build_records(
        facts,
        request_id="req_" + "a" * 32,
        http_status=200,
        error_code=None,
        started_at=time.time(),
        elapsed_s=0.1,
        gateway_instance="test",
    )
    return usage_of(audit)
