"""Every dashboard, by the name of its file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dashboards import limits, overview, routing, usage, workers
from dashboards.board import Board

DASHBOARDS_DIR = Path(__file__).parents[3] / "deployments/grafana/dashboards"

BOARDS: dict[str, Callable[[], Board]] = {
    "overview": overview.board,
    "routing-and-nodes": routing.board,
    "limits-and-budgets": limits.board,
    "usage-pipeline": usage.board,
    "workers": workers.board,
}
