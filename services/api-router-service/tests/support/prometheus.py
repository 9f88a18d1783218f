"""A real Prometheus (the Debian package) on a free port, scraping given targets every
second and evaluating given rule files, with its HTTP API for queries and alerts."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.servers import free_port, wait_until

REPO = Path(__file__).parents[4]
RULES = REPO / "deployments/prometheus/api-router.rules.yaml"


def rules_with_short_for(source: Path, target: Path, for_s: float) -> Path:
    """A copy of ``source`` whose alerts wait ``for_s`` seconds instead of their ``for:``
    (alerts without one keep firing at once): the drills' and tests' override."""
    tree = yaml.safe_load(source.read_text())
    for group in tree["groups"]:
        for rule in group["rules"]:
            if "alert" in rule and "for" in rule:
                rule["for"] = f"{int(for_s * 1000)}ms"
    target.write_text(yaml.safe_dump(tree, sort_keys=False))
    return target


class PrometheusServer:
    def __init__(
        self,
        workdir: Path,
        targets: Mapping[str, Sequence[str]],
        rule_files: Iterable[Path] = (),
        interval_s: float = 1.0,
    ) -> None:
        """``targets``: job name -> ``host:port`` of each endpoint serving ``/metrics``."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._workdir = workdir
        self._targets = targets
        self._rule_files = list(rule_files)
        self._interval = f"{int(interval_s * 1000)}ms"
        self._process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "prometheus.log"

    def start(self) -> PrometheusServer:
        self._workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": self._interval, "evaluation_interval": self._interval},
            "rule_files": [str(path) for path in self._rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": list(endpoints)}]}
                for job, endpoints in self._targets.items()
            ],
        }
        config_path = self._workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={self._workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._ready, 30, "prometheus ready")
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(15)
            self._process = None

    def _ready(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(f"prometheus exited:\n{self.log_path.read_text()}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def api(self, path: str, **params: str) -> Any:
        """``/api/v1/<path>``'s data; raises with Prometheus' error (a query that does not
        parse, say)."""
        answer = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=30).json()
        if answer["status"] != "success":
            raise ValueError(f"{answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def query_range(self, expr: str, start: float, end: float, step_s: float = 1) -> list[Any]:
        data = self.api("query_range", query=expr, start=str(start), end=str(end), step=str(step_s))
        result: list[Any] = data["result"]
        return result

    def targets_up(self) -> bool:
        active = self.api("targets")["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)

    def firing(self) -> set[str]:
        """Names of the alerts firing now."""
        return {
            a["labels"]["alertname"] for a in self.api("alerts")["alerts"] if a["state"] == "firing"
        }

    def wait_firing(self, alert: str, timeout_s: float) -> float:
        """Wait until ``alert`` fires; returns the time (epoch s) it was seen firing."""
        try:
            wait_until(lambda: alert in self.firing(), timeout_s, f"alert {alert} firing")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; the rule now: {self.rule(alert)}") from None
        return time.time()

    def rule(self, name: str) -> dict[str, Any]:
        """The rule's state as Prometheus evaluates it (health, last error, alerts)."""
        for group in self.api("rules")["groups"]:
            for rule in group["rules"]:
                if rule["name"] == name:
                    found: dict[str, Any] = rule
                    return found
        raise KeyError(name)
