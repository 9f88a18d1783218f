"""The Helm chart: helm lint, the Kubernetes API schemas, and what its manifests promise."""

from __future__ import annotations

import base64
import json
import math
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.chart import (
    CHART,
    CI_VALUES,
    KUBE_VERSION,
    find,
    gateway_workload,
    helm,
    render,
    render_raw,
    tool,
    worker_workloads,
)
from tests.support.chart_schema import VALUES_SCHEMA, settings_defs
from tests.support.containers import Image

SERVICE = Path(__file__).parents[2]
VALUE_SETS = [pytest.param([], id="default"), *(pytest.param([p], id=p.stem) for p in CI_VALUES)]
# Custom resources of the Prometheus operator: kubernetes-validate has no schema for them.
OPERATOR_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


@pytest.mark.parametrize("values", VALUE_SETS)
def test_helm_lint_strict_passes(values: list[Path]) -> None:
    args = ["lint", "--strict", str(CHART), *(f"--values={p}" for p in values)]
    result = helm(*args, "--kube-version", KUBE_VERSION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", VALUE_SETS)
def test_every_manifest_is_valid_for_current_kubernetes(values: list[Path], tmp_path: Path) -> None:
    objects = render(values)
    manifests = tmp_path / "manifests.yaml"
    manifests.write_text(yaml.safe_dump_all(objects))
    command = [tool("kubernetes-validate"), "--strict", "-k", KUBE_VERSION, str(manifests)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    passed = {line.split(" for resource ")[1].split()[0] for line in lines if " passed " in line}
    expected = {
        f"{o['kind'].lower()}/{o['metadata']['name']}"
        for o in objects
        if o["kind"] not in OPERATOR_KINDS
    }
    assert passed == expected
    for kind in {o["kind"] for o in objects} & OPERATOR_KINDS:
        assert f"Couldn't find schema for kind {kind}" in result.stdout + result.stderr


def test_the_chart_deploys_the_package_version() -> None:
    version = tomllib.loads((SERVICE / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == version
    pod = gateway_workload(render())["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == f"api-router-service:{version}"
    assert Image.from_dockerfile().labels["org.opencontainers.image.version"] == version


def test_values_schema_holds_the_settings_schemas() -> None:
    schema = json.loads(VALUES_SCHEMA.read_text())
    assert schema["$defs"] == settings_defs(), (
        "values.schema.json is stale: run `make chart-schema`"
    )


@pytest.mark.parametrize(
    ("values", "refusal"),
    [
        ({"config": {"server": {"prot": 1}}}, "at '/config/server': additional properties 'prot'"),
        ({"config": {"auth": {"pepper": "p" * 40}}}, "at '/config/auth': additional properties"),
        ({"config": {"redis": {"password": "pw"}}}, "at '/config/redis': additional properties"),
        ({"config": {"redis": {"mode": "replicated"}}}, "at '/config/redis/mode'"),
        ({"config": {"usage": {"on_spool_full": "panic"}}}, "at '/config/usage/on_spool_full'"),
        ({"policies": {"content": {"plans": {"p": {"burst": 0}}}}}, "/policies/content/plans/p"),
        ({"workers": [{"name": "n", "pool": "p", "backend": "vllm"}]}, "/workers/0/backend"),
        ({"secrets": {"kek": "c2hvcnQ="}}, "at '/secrets/kek'"),
    ],
)
def test_the_schema_refuses_bad_values_naming_them(values: dict[str, Any], refusal: str) -> None:
    result = render_raw(values=values)
    assert result.returncode != 0
    assert refusal in result.stderr


@pytest.mark.parametrize("values", VALUE_SETS)
def test_gateway_pods_are_locked_down_and_drain_before_they_are_killed(
    values: list[Path],
) -> None:
    objects = render(values)
    pod = gateway_workload(objects)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    image_uid = Image.from_dockerfile().user.split(":")[0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == image_uid
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    router = yaml.safe_load(find(objects, "ConfigMap", "-config")["data"]["router.yaml"])
    stop_s = (
        container["lifecycle"]["preStop"]["sleep"]["seconds"]
        + router["server"].get("graceful_shutdown_s", 30)
        + router["usage"].get("shutdown_flush_s", 5)
    )
    assert pod["terminationGracePeriodSeconds"] >= math.ceil(stop_s)
    selector = gateway_workload(objects)["spec"]["selector"]["matchLabels"]
    assert (
        selector.items()
        <= gateway_workload(objects)["spec"]["template"]["metadata"]["labels"].items()
    )
    for spread in pod["topologySpreadConstraints"]:
        assert spread["labelSelector"]["matchLabels"] == selector


@pytest.mark.parametrize("values", VALUE_SETS)
def test_service_pdb_and_network_policy_select_the_gateway_port(values: list[Path]) -> None:
    objects = render(values)
    workload = gateway_workload(objects)
    labels = workload["spec"]["template"]["metadata"]["labels"]
    port_names = {p["name"] for p in workload["spec"]["template"]["spec"]["containers"][0]["ports"]}
    service = find(objects, "Service", "api-router-service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    policy = find(objects, "NetworkPolicy", "-gateway")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert [p["port"] for p in policy["spec"]["ingress"][0]["ports"]] == ["http"]
    if any(o["kind"] == "PodDisruptionBudget" for o in objects):
        pdb = find(objects, "PodDisruptionBudget")
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    if worker_workloads(objects):
        # Workers take no connections but scrapes of their metrics port.
        ingress = find(objects, "NetworkPolicy", "-worker")["spec"]["ingress"]
        assert [[p["port"] for p in rule["ports"]] for rule in ingress] == [["metrics"]]


def test_a_router_config_change_rolls_the_pods_and_a_policies_change_does_not() -> None:
    def annotations(values: dict[str, Any]) -> dict[str, str]:
        workload = gateway_workload(render(values=values))
        result: dict[str, str] = workload["spec"]["template"]["metadata"]["annotations"]
        return result

    base = annotations({})
    assert (
        annotations({"config": {"telemetry": {"log_level": "DEBUG"}}})["checksum/config"]
        != (base["checksum/config"])
    )
    policies = {"policies": {"content": {"plans": {"default": {"requests_per_second": 1}}}}}
    assert annotations(policies) == base


def test_policies_are_mounted_whole_so_the_kubelet_can_update_them() -> None:
    pod = gateway_workload(render())["spec"]["template"]["spec"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "policies")
    assert "subPath" not in mount  # a subPath mount never sees ConfigMap updates


def test_a_persistent_spool_makes_a_stateful_set_with_a_claim_per_replica() -> None:
    objects = render(values={"autoscaling": {"enabled": True}})
    workload = gateway_workload(objects)
    assert workload["kind"] == "StatefulSet"
    claim = workload["spec"]["volumeClaimTemplates"][0]
    mounts = workload["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/var/lib/api-router"} in mounts
    assert find(objects, "Service", "-peers")["spec"]["clusterIP"] == "None"
    assert workload["spec"]["serviceName"] == find(objects, "Service", "-peers")["metadata"]["name"]
    assert "replicas" not in workload["spec"]  # the autoscaler owns it
    assert find(objects, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["kind"] == (
        "StatefulSet"
    )

    ephemeral = gateway_workload(render(values={"persistence": {"enabled": False}}))
    assert ephemeral["kind"] == "Deployment"
    volumes = {v["name"]: v for v in ephemeral["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["data"]


def test_generated_secrets_are_usable_and_an_existing_secret_replaces_them() -> None:
    secret = find(render(), "Secret")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    pepper = base64.b64decode(secret["data"]["pepper"]).decode()
    kek = base64.b64decode(base64.b64decode(secret["data"]["kek"]))
    assert len(pepper) >= 32
    assert len(kek) == 32

    objects = render(values={"secrets": {"existingSecret": "mine"}})
    assert not [o for o in objects if o["kind"] == "Secret"]
    env = gateway_workload(objects)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in env} == {"mine"}
