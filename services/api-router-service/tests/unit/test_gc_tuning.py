"""What start-up built is frozen out of the collector's scans, and the young generation is
larger, with the older generations' ratios kept."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from api_router.gc_tuning import YOUNG_THRESHOLD, tune_for_serving


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_gc")
def test_start_up_objects_are_frozen_and_collections_rarer() -> None:
    built_at_start_up: list[list[int]] = [[]]  # a container: tracked by the collector
    _, middle, old = gc.get_threshold()
    tune_for_serving()
    scanned = (obj for generation in range(3) for obj in gc.get_objects(generation))
    assert not any(obj is built_at_start_up for obj in scanned)
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)
