"""The chart's ServiceMonitor, PodMonitor, PrometheusRule and Grafana dashboard switches.

The rule and dashboard templates render whatever files deployments/prometheus/ and
deployments/grafana/dashboards/ hold: the rules and dashboards of this repository.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.chart import CHART, find, render, render_raw, worker_workloads

SWITCHES: dict[str, Any] = {
    "metrics": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "prometheusRule": {"enabled": True},
        "grafanaDashboards": {"enabled": True, "annotations": {"grafana_folder": "LLM"}},
    },
    "workers": [{"name": "mock-0", "pool": "edge", "backend": "mock"}],
}
RULE_FILES = sorted((CHART / "files/prometheus").glob("*.rules.yaml"))
DASHBOARD_FILES = sorted((CHART / "files/dashboards").glob("*.json"))


@pytest.fixture
def chart_copy(tmp_path: Path) -> Path:
    """The chart with its symlinked rule and dashboard directories copied in."""
    copy = tmp_path / "chart"
    shutil.copytree(CHART, copy, symlinks=False)
    return copy


def test_the_switches_render_the_files_and_scrapes_of_gateways_and_workers() -> None:
    objects = render(values=SWITCHES)

    rule = find(objects, "PrometheusRule")
    groups = [g for path in RULE_FILES for g in yaml.safe_load(path.read_text())["groups"]]
    assert rule["spec"]["groups"] == groups  # templating in annotations kept as is
    assert "{{ $labels.node }}" in json.dumps(groups)
    dashboards = find(objects, "ConfigMap", "-dashboards")
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboards["metadata"]["annotations"] == {"grafana_folder": "LLM"}
    assert {k: json.loads(v) for k, v in dashboards["data"].items()} == {
        path.name: json.loads(path.read_text()) for path in DASHBOARD_FILES
    }
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
    # Workers: scraped through a PodMonitor on the port their args serve metrics on.
    pods = find(objects, "PodMonitor")
    worker = worker_workloads(objects)[0]["spec"]["template"]
    assert pods["spec"]["selector"]["matchLabels"].items() <= worker["metadata"]["labels"].items()
    container = worker["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert pods["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    args = container["args"]
    assert args[args.index("--metrics-port") + 1] == str(ports["metrics"])
    assert args[args.index("--metrics-host") + 1] == "0.0.0.0"
    policy = find(objects, "NetworkPolicy", "-worker")
    assert policy["spec"]["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]


def test_runbook_urls_become_absolute_with_the_runbook_url_value() -> None:
    url = "https://git.example.com/llm/api-router/blob/main/docs/runbooks.md"
    values = {"metrics": {"prometheusRule": {"enabled": True, "runbookUrl": url}}}
    rule = find(render(values=values), "PrometheusRule")
    links = [
        r["annotations"]["runbook_url"]
        for group in rule["spec"]["groups"]
        for r in group["rules"]
        if "alert" in r
    ]
    assert links and all(link.startswith(f"{url}#apirouter") for link in links)


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
