"""The chart's ServiceMonitor, PrometheusRule and Grafana dashboard switches.

The rule and dashboard templates render whatever files deployments/prometheus/ and
deployments/grafana/dashboards/ hold; these tests give a copy of the chart such files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.support.chart import CHART, find, render, render_raw

RULES = {
    "groups": [
        {
            "name": "api-router-test",
            "rules": [
                {
                    "alert": "GatewayDown",
                    "expr": 'up{job="api-router"} == 0',
                    "for": "5m",
                    "annotations": {"summary": "{{ $labels.instance }} is down"},
                }
            ],
        }
    ]
}
DASHBOARD = {"title": "api-router test", "uid": "api-router-test", "panels": []}
SWITCHES = {
    "metrics": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "prometheusRule": {"enabled": True},
        "grafanaDashboards": {"enabled": True, "annotations": {"grafana_folder": "LLM"}},
    }
}


@pytest.fixture
def chart_copy(tmp_path: Path) -> Path:
    """The chart with its symlinked rule and dashboard directories copied in."""
    copy = tmp_path / "chart"
    shutil.copytree(CHART, copy, symlinks=False)
    return copy


def test_the_switches_render_the_files_and_a_scrape_of_the_gateway(chart_copy: Path) -> None:
    (chart_copy / "files/prometheus/gateway.rules.yaml").write_text(yaml.safe_dump(RULES))
    (chart_copy / "files/prometheus/gateway.test.yaml").write_text("rule_files: []\n")
    (chart_copy / "files/dashboards/overview.json").write_text(json.dumps(DASHBOARD))
    objects = render(values=SWITCHES, chart=chart_copy)

    rule = find(objects, "PrometheusRule")
    assert rule["spec"]["groups"] == RULES["groups"]  # templating in annotations kept as is
    dashboards = find(objects, "ConfigMap", "-dashboards")
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboards["metadata"]["annotations"] == {"grafana_folder": "LLM"}
    assert {k: json.loads(v) for k, v in dashboards["data"].items()} == {"overview.json": DASHBOARD}
    monitor = find(objects, "ServiceMonitor")
    service = find(objects, "Service", "api-router-service")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    # The headless peers Service must not be scraped a second time.
    peers = find(objects, "Service", "-peers")
    assert not monitor["spec"]["selector"]["matchLabels"].items() <= (
        peers["metadata"]["labels"].items()
    )
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"


def test_they_are_off_by_default() -> None:
    kinds = {o["kind"] for o in render()}
    assert not kinds & {"ServiceMonitor", "PrometheusRule"}


@pytest.mark.parametrize(
    ("switch", "message"),
    [
        ("prometheusRule", "deployments/prometheus/ holds no *.rules.yaml"),
        ("grafanaDashboards", "deployments/grafana/dashboards/ holds no *.json"),
    ],
)
def test_a_switch_without_files_refuses_to_render(
    chart_copy: Path, switch: str, message: str
) -> None:
    for leftover in [*chart_copy.glob("files/*/*.rules.yaml"), *chart_copy.glob("files/*/*.json")]:
        leftover.unlink()
    result = render_raw(values={"metrics": {switch: {"enabled": True}}}, chart=chart_copy)
    assert result.returncode != 0
    assert message in result.stderr
