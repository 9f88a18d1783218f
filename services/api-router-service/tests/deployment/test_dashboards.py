"""The dashboards: the checked-in JSON is what ``dashboards/`` builds, and each one is
wired to a datasource variable and filters by the variables it declares.

(``test_dashboard_queries.py`` runs every query against a real Prometheus.)"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from dashboards.catalog import BOARDS, DASHBOARDS_DIR


@pytest.mark.parametrize("name", BOARDS)
def test_the_checked_in_dashboard_is_the_built_one(name: str) -> None:
    # Rewrite with `make dashboards` after changing dashboards/.
    assert (DASHBOARDS_DIR / f"{name}.json").read_text() == BOARDS[name]().to_json()


@pytest.mark.parametrize("name", BOARDS)
def test_every_panel_queries_the_chosen_datasource_with_the_declared_filters(name: str) -> None:
    dashboard: dict[str, Any] = json.loads((DASHBOARDS_DIR / f"{name}.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels
    used: set[str] = set()
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
        for target in panel["targets"]:
            used |= set(re.findall(r"\$(\w+)", target["expr"]))
    declared = set(variables) - {"datasource"}
    assert declared <= used, f"declared but never used: {declared - used}"
    assert used - {"__rate_interval"} <= declared, f"undeclared: {used - declared}"
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
