"""The benchmark harness's own logic (bench/): its figures, its table, the baseline's settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.baseline import BaselineStack, known_settings
from bench.soak import slope_per_10_min
from bench.transport_matrix import cell

import api_router
from tests.support.servers import RedisServer, TansuBroker


def test_the_rss_slope_is_least_squares_in_mb_per_10_minutes() -> None:
    growing = [(float(t), 100 + t / 60) for t in range(0, 601, 10)]  # 1 MB a minute
    assert slope_per_10_min(growing) == pytest.approx(10.0)
    assert slope_per_10_min([(0.0, 90.0), (10.0, 92.0), (20.0, 90.0)]) == pytest.approx(0.0)
    assert slope_per_10_min([(0.0, 90.0)]) == 0.0


def test_a_cell_is_the_median_over_rounds_and_their_range() -> None:
    rounds = [{"row": {"p50": value}} for value in (3.0, 1.0, 2.0)]
    assert cell(rounds, "row", "p50") == "2.00 (1.00–3.00)"
    assert cell(rounds[:1], "row", "p50") == "3.00"
    assert cell(rounds, "row", "ttft") == "–"


def test_the_baseline_gets_only_the_settings_its_code_knows(tmp_path: Path) -> None:
    src = Path(api_router.__file__).parents[1]
    known = known_settings(src)
    known["direct"].remove("probe_interval_s")  # as if the baseline predated the field
    stack = BaselineStack(
        src, known, RedisServer(tmp_path), TansuBroker(), "t", tmp_path, "http://127.0.0.1:9"
    )
    env = stack.env(direct={"probe_interval_s": 5.0})
    assert env["PYTHONPATH"] == str(src)
    assert "API_ROUTER__DIRECT__PROBE_INTERVAL_S" not in env
    assert env["API_ROUTER__DIRECT__CONNECT_TIMEOUT_S"] == "1.0"
    assert env["API_ROUTER__REDIS__KEY_PREFIX"] == "t"
