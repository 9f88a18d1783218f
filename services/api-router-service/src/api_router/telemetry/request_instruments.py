"""Counters and histograms recorded on every request, aggregated in plain dicts.

OpenTelemetry's SDK spends 5 to 10 µs on each measurement (a ``Measurement`` object, the
attributes hashed into a frozenset, locks, exemplar sampling): with a dozen measurements a
request that was about 15 % of a gateway's CPU. These instruments keep a running sum or
bucket counts per label set in a dict (the event loop is their only writer) and are read
at scrape time by ``InstrumentsCollector``, which renders them exactly as OpenTelemetry's
Prometheus exporter renders its own (the same name, unit, label and bucket mapping), so a
series did not change name or shape when it moved here. The asynchronous (observable)
instruments, read only at scrape time, stay on OpenTelemetry.

Label sets are bounded where they are made (tenants by ``TenantLabels``, models by the
known-model check, routes by the route table), so there is no cardinality cap here.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from itertools import accumulate

from opentelemetry.exporter.prometheus._mapping import (
    map_unit,
    sanitize_attribute,
    sanitize_full_name,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

Labels = Mapping[str, str]
_LabelKey = tuple[tuple[str, str], ...]


class Counter:
    __slots__ = ("name", "unit", "description", "sums")

    def __init__(self, name: str, unit: str, description: str) -> None:
        self.name, self.unit, self.description = name, unit, description
        self.sums: dict[_LabelKey, float] = {}

    def add(self, amount: float, labels: Labels) -> None:
        key = tuple(labels.items())
        self.sums[key] = self.sums.get(key, 0) + amount


class _Point:
    __slots__ = ("counts", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.total = 0.0


class Histogram:
    __slots__ = ("name", "unit", "description", "bounds", "points")

    def __init__(self, name: str, unit: str, description: str, bounds: Sequence[float]) -> None:
        self.name, self.unit, self.description = name, unit, description
        self.bounds = tuple(bounds)
        self.points: dict[_LabelKey, _Point] = {}

    def record(self, value: float, labels: Labels) -> None:
        key = tuple(labels.items())
        point = self.points.get(key)
        if point is None:
            point = self.points[key] = _Point(len(self.bounds) + 1)
        # A value on a boundary counts in that boundary's bucket (``le``), as in OTel.
        point.counts[bisect_left(self.bounds, value)] += 1
        point.total += value


class InstrumentsCollector(Collector):
    """The instruments of one meter, for a prometheus_client registry."""

    def __init__(self) -> None:
        self._instruments: list[Counter | Histogram] = []

    def counter(self, name: str, unit: str, description: str) -> Counter:
        counter = Counter(name, unit, description)
        self._instruments.append(counter)
        return counter

    def histogram(
        self, name: str, unit: str, description: str, bounds: Sequence[float]
    ) -> Histogram:
        histogram = Histogram(name, unit, description, bounds)
        self._instruments.append(histogram)
        return histogram

    def collect(self) -> Iterator[Metric]:
        for instrument in self._instruments:
            # A snapshot first: the scrape must not see a series half-added.
            if isinstance(instrument, Counter):
                sums = list(instrument.sums.items())
                if sums:  # as OpenTelemetry: no series, no family
                    yield _counter_family(instrument, sums)
            else:
                points = list(instrument.points.items())
                if points:
                    yield _histogram_family(instrument, points)


def _counter_family(counter: Counter, sums: list[tuple[_LabelKey, float]]) -> Metric:
    names, rows = _label_rows([key for key, _ in sums])
    name, documentation, unit = _naming(counter)
    family = CounterMetricFamily(name, documentation, labels=names, unit=unit)
    for row, (_, value) in zip(rows, sums, strict=True):
        family.add_metric(row, value)
    return family


def _histogram_family(histogram: Histogram, points: list[tuple[_LabelKey, _Point]]) -> Metric:
    names, rows = _label_rows([key for key, _ in points])
    name, documentation, unit = _naming(histogram)
    family = HistogramMetricFamily(name, documentation, labels=names, unit=unit)
    uppers = [f"{bound}" for bound in histogram.bounds] + ["+Inf"]
    for row, (_, point) in zip(rows, points, strict=True):
        cumulative = list(zip(uppers, accumulate(point.counts), strict=True))
        family.add_metric(row, cumulative, sum_value=point.total)
    return family


def _naming(instrument: Counter | Histogram) -> tuple[str, str, str]:
    """A family's name, help and unit, mapped as the OpenTelemetry exporter maps them."""
    return sanitize_full_name(instrument.name), instrument.description, map_unit(instrument.unit)


def _label_rows(keys: list[_LabelKey]) -> tuple[list[str], list[list[str]]]:
    """Sorted, sanitized label names over every series, and each series' values in that
    order ("" where a series lacks a label), as the OpenTelemetry exporter renders them."""
    rows = [{sanitize_attribute(name): value for name, value in key} for key in keys]
    names = sorted({name for row in rows for name in row})
    return names, [[row.get(name, "") for name in names] for row in rows]
