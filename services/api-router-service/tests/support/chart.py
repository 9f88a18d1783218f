"""The deployment tools (helm, kubernetes-validate, ...) and the chart rendered by helm."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate.utils import latest_version

from tests.support.containers import REPO, VENV_BIN

CHART = REPO / "deployments/helm/api-router-service"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
RELEASE = "rel"
NAMESPACE = "llm"
# The newest Kubernetes whose API schemas kubernetes-validate carries: helm renders for
# it and every manifest is validated against it.
KUBE_VERSION = latest_version()


def tool(name: str) -> str:
    """A tool `make bootstrap` installs: into the venv, or on PATH (system packages)."""
    found = VENV_BIN / name
    if found.exists():
        return str(found)
    on_path = shutil.which(name)
    if on_path is None:
        pytest.fail(f"{name} is missing: run `make bootstrap` (it installs it)")
    return on_path


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("helm"), *args], capture_output=True, text=True, timeout=60, check=False
    )


def render(
    values_files: Sequence[Path] = (),
    values: Mapping[str, Any] | None = None,
    chart: Path = CHART,
) -> list[dict[str, Any]]:
    """``helm template`` of the chart with these values; the manifests, parsed."""
    result = render_raw(values_files, values, chart)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_raw(
    values_files: Sequence[Path] = (),
    values: Mapping[str, Any] | None = None,
    chart: Path = CHART,
) -> subprocess.CompletedProcess[str]:
    args = ["template", RELEASE, str(chart), "--namespace", NAMESPACE]
    args += ["--kube-version", KUBE_VERSION]
    for path in values_files:
        args += ["--values", str(path)]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as overlay:
        json.dump(values or {}, overlay)  # JSON is YAML
        overlay.flush()
        return helm(*args, "--values", overlay.name)


def find(objects: Sequence[Mapping[str, Any]], kind: str, name: str = "") -> dict[str, Any]:
    """The one rendered object of ``kind`` (whose name ends with ``name``)."""
    matches = [
        dict(o) for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(name)
    ]
    assert len(matches) == 1, f"{len(matches)} {kind} objects named *{name}"
    return matches[0]


def gateway_workload(objects: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    workloads = [
        dict(o)
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet")
        and o["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"
    ]
    assert len(workloads) == 1
    return workloads[0]


def worker_workloads(objects: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        dict(o)
        for o in objects
        if o["kind"] == "Deployment"
        and o["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    ]
