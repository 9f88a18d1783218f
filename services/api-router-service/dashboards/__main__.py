"""Writes every dashboard to ``deployments/grafana/dashboards/<name>.json``."""

from __future__ import annotations

from pathlib import Path

from dashboards.catalog import BOARDS, DASHBOARDS_DIR


def write(directory: Path = DASHBOARDS_DIR) -> None:
    for name, board in BOARDS.items():
        (directory / f"{name}.json").write_text(board().to_json(), encoding="utf-8")


if __name__ == "__main__":
    write()
