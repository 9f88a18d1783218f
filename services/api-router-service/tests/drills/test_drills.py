"""Both failure drills of docs/runbooks.md, run end to end in a bounded form (short
``for:`` windows, a short steady phase), so that they cannot rot: the alert fires, the
runbook's mitigation clears it, and no usage record is lost."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import pytest
from drills.figures import DrillFigures

from drills import backend_failover, exporter_outage


@pytest.mark.timeout(120)
def test_backend_failover_drill_detects_drains_and_loses_no_record() -> None:
    figures = backend_failover.run(backend_failover.Options(steady_s=3.0, for_s=2.0))
    _check(figures)


@pytest.mark.timeout(240)
def test_exporter_outage_drill_detects_fails_over_and_loses_no_record() -> None:
    figures = exporter_outage.run(exporter_outage.Options(steady_s=3.0, for_s=2.0))
    _check(figures)


def _check(figures: DrillFigures) -> None:
    sys.stderr.write(f"\n{json.dumps(asdict(figures))}\n")  # shown with pytest -s
    assert 0 < figures.time_to_detect_s <= figures.time_to_mitigate_s
    assert figures.time_to_mitigate_s <= figures.time_to_recover_s
    # Every request got an answer with a request id, and each one's record reached Kafka.
    assert figures.usage_records_expected == figures.requests > 0
    assert figures.usage_records_lost == 0
    assert figures.success_ratio_during_fault > 0.5
