"""The alert rules, checked by promtool (syntax, and the unit tests beside them), and held
to the house rules: every alert has its severity, summary, description and a runbook
section that exists, and a promtool case where it fires and one where it stays quiet."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.prometheus import REPO, RULES

TESTS = RULES.with_name("api-router.test.yaml")
RUNBOOKS = REPO / "docs/runbooks.md"


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], cwd=RULES.parent, capture_output=True, text=True, timeout=60
    )


def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    check = _promtool("check", "rules", RULES.name)
    assert check.returncode == 0, check.stdout + check.stderr
    tested = _promtool("test", "rules", TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_fires_in_one_case_and_stays_quiet_in_another() -> None:
    cases = [
        case
        for test in yaml.safe_load(TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
    ]
    for alert in (rule["alert"] for rule in _alerts()):
        own = [case for case in cases if case["alertname"] == alert]
        assert any(case["exp_alerts"] for case in own), f"{alert} never fires in a test"
        assert any(not case["exp_alerts"] for case in own), f"{alert} is never quiet in a test"


@pytest.mark.parametrize("rule", _alerts(), ids=lambda rule: rule["alert"])
def test_an_alert_says_how_bad_what_and_where_its_runbook_is(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"page", "ticket"}
    annotations = rule["annotations"]
    assert annotations["summary"] and annotations["description"]
    path, _, anchor = annotations["runbook_url"].partition("#")
    assert path == "docs/runbooks.md"
    assert anchor in _anchors(RUNBOOKS), f"docs/runbooks.md has no section #{anchor}"


def _anchors(markdown: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    headings = re.findall(r"^#{1,6} (.+)$", markdown.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
