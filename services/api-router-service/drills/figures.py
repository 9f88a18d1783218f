"""What a drill reports, and the arithmetic over its samples."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from drills.load import Sample


@dataclass(frozen=True)
class Timeline:
    """Epoch seconds of a drill's steps."""

    fault: float
    detected: float  # the alert seen firing
    mitigated: float  # the runbook's mitigation applied
    recovered: float


@dataclass(frozen=True)
class DrillFigures:
    drill: str
    alert: str
    requests: int
    time_to_detect_s: float  # fault -> the alert firing in Prometheus
    time_to_mitigate_s: float  # fault -> the runbook's mitigation applied
    time_to_recover_s: float  # fault -> the alert resolved and requests served normally
    # Requests in flight at the fault or started before recovery: share answered 200, and
    # how many got each HTTP status ("0": no gateway could be reached).
    success_ratio_during_fault: float
    answers_during_fault: dict[str, int]
    usage_records_expected: int
    usage_records_lost: int  # answered requests whose record never reached the topic
    usage_records_duplicated: int  # sent twice (at least once: consumers dedupe)
    notes: str = ""

    @classmethod
    def measured(
        cls,
        drill: str,
        alert: str,
        at: Timeline,
        samples: Sequence[Sample],
        records: Sequence[dict[str, Any]],
        notes: str,
    ) -> DrillFigures:
        """The figures of a drill: its timeline, its load, and the usage records read back
        (every answered request must have one)."""
        expected = {s.request_id for s in samples if s.request_id}
        # In flight at the fault or started before recovery.
        during = [s for s in samples if s.ended >= at.fault and s.started <= at.recovered]
        answers = Counter(str(s.status) for s in during)
        received = [r["request_id"] for r in records if r["request_id"] in expected]
        return cls(
            drill=drill,
            alert=alert,
            requests=len(samples),
            time_to_detect_s=round(at.detected - at.fault, 1),
            time_to_mitigate_s=round(at.mitigated - at.fault, 1),
            time_to_recover_s=round(at.recovered - at.fault, 1),
            success_ratio_during_fault=round(answers["200"] / len(during), 4) if during else 1.0,
            answers_during_fault=dict(sorted(answers.items())),
            usage_records_expected=len(expected),
            usage_records_lost=len(expected - set(received)),
            usage_records_duplicated=len(received) - len(set(received)),
            notes=notes,
        )

    def print(self) -> None:
        sys.stdout.write(json.dumps(asdict(self), indent=2) + "\n")


def impact_ended(samples: Sequence[Sample], fault_at: float) -> float:
    """When the last request started since the fault that paid for it ended: not answered
    200, or answered only after failing over (``fault_at`` when none did)."""
    hurt = [
        s.ended for s in samples if s.started >= fault_at and (s.status != 200 or s.attempts > 1)
    ]
    return max(hurt, default=fault_at)
