"""The disk spool keeps records oldest first, once each, and survives being reopened."""

from __future__ import annotations

from pathlib import Path

from api_router.usage.spool import UsageSpool


def test_records_come_back_oldest_first_and_once_each(tmp_path: Path) -> None:
    spool = UsageSpool(tmp_path)
    spool.append([("r1", '{"n":1}'), ("r2", '{"n":2}')])
    spool.append([("r3", '{"n":3}'), ("r2", '{"n":2}')])  # r2 again: kept once
    assert spool.depth == 3
    assert spool.oldest(2) == [("r1", '{"n":1}'), ("r3", '{"n":3}')]
    spool.delete(["r1", "r3"])
    assert spool.oldest(10) == [("r2", '{"n":2}')]
    spool.close()


def test_committed_records_outlive_the_process_that_wrote_them(tmp_path: Path) -> None:
    first = UsageSpool(tmp_path)
    first.append([("r1", "{}")])
    first.close()
    again = UsageSpool(tmp_path)
    assert (again.depth, again.oldest(5)) == (1, [("r1", "{}")])
    again.reopen()
    assert again.oldest(5) == [("r1", "{}")]
    again.close()


def test_a_broken_file_is_moved_aside_and_an_empty_spool_starts(tmp_path: Path) -> None:
    (tmp_path / "usage-spool.sqlite").write_bytes(b"garbage" * 1000)
    spool = UsageSpool(tmp_path)
    assert spool.depth == 0
    spool.append([("r1", "{}")])
    assert spool.depth == 1
    spool.close()
    assert [p.name.startswith("usage-spool.corrupt-") for p in tmp_path.iterdir()].count(True) == 1
