"""Reading one sample out of a Prometheus text exposition (what a scrape returns)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def sample(text: str, name: str, labels: dict[str, str]) -> float:
    """The value of the sample ``name`` whose labels include ``labels`` (0 when absent);
    several matches are summed."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and labels.items() <= found.labels.items():
                total += found.value
    return total
