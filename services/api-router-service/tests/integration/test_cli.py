"""`api-router` subcommands called through main(argv), as the console script does."""

from __future__ import annotations

import getpass
import importlib.metadata
import json
import os
from pathlib import Path

import pytest

from api_router.cli import main
from tests.support.stack import KEK, PEPPER, Stack, chat, node_health

SAMPLE = Path(__file__).parents[2] / "configs" / "router.sample.yaml"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, stack: Stack) -> Stack:
    for name, value in stack.env().items():
        if name.startswith("API_ROUTER"):
            monkeypatch.setenv(name, value)
    return stack


@pytest.fixture
def pepper_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("API_ROUTER")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("API_ROUTER__AUTH__PEPPER", PEPPER)
    monkeypatch.setenv("API_ROUTER__AUTH__KEK", KEK)


def test_config_check_accepts_the_sample(
    pepper_only: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check", str(SAMPLE)]) == 0
    assert "valid" in capsys.readouterr().out


def test_config_check_names_the_path_and_exits_2(
    pepper_only: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("health:\n  max_ram_percent: 150\n")
    assert main(["config", "check", str(bad)]) == 2
    assert "health.max_ram_percent: expected `float` <= 100" in capsys.readouterr().err


def test_config_check_needs_no_secrets(
    pepper_only: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("API_ROUTER__AUTH__PEPPER")
    monkeypatch.delenv("API_ROUTER__AUTH__KEK")
    assert main(["config", "check", str(SAMPLE)]) == 0
    assert capsys.readouterr().out == f"{SAMPLE}: valid\n"


@pytest.mark.parametrize(
    ("name", "value", "refusal"),
    [
        ("API_ROUTER__AUTH__PEPPER", "short", "auth.pepper: expected `str` of length >= 32"),
        ("API_ROUTER__AUTH__KEK", "c2hvcnQ=", "auth.kek: decodes to 5 bytes, not 32"),
    ],
)
def test_config_check_refuses_a_secret_that_is_present_but_invalid(
    pepper_only: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
    refusal: str,
) -> None:
    monkeypatch.setenv(name, value)
    assert main(["config", "check", str(SAMPLE)]) == 2
    assert refusal in capsys.readouterr().err


def test_version_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert (
        capsys.readouterr().out
        == f"api-router {importlib.metadata.version('api-router-service')}\n"
    )


POLICIES_SAMPLE = SAMPLE.parent / "policies.sample.yaml"


def test_config_check_accepts_the_policies_sample(
    pepper_only: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check", "--policies", str(POLICIES_SAMPLE)]) == 0
    assert capsys.readouterr().out == f"{POLICIES_SAMPLE}: valid\n"


def test_config_check_validates_the_policies_file_the_router_file_names(
    pepper_only: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = tmp_path / "policies.yaml"
    policies.write_text(
        "plans:\n  p:\n    max_concurrent: 2\n"
        "tenants:\n  acme:\n    plan: p\n    keys:\n      k1:\n        max_concurrent: 3\n"
    )
    router = tmp_path / "router.yaml"
    router.write_text(f"limits:\n  policies_file: {policies}\n")
    assert main(["config", "check", str(router)]) == 2
    err = capsys.readouterr().err
    assert "tenants.acme.keys.k1.max_concurrent: 3 widens the plan's 2; keys only narrow" in err


async def test_keys_create_prints_a_working_key_once(
    env: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = env
    code = await _in_thread(
        [
            "keys",
            "create",
            "--tenant",
            "acme",
            "--scope",
            "inference",
            "--scope",
            "audit:read",
            "--name",
            "ci",
            "--json",
        ]
    )
    assert code == 0
    created = json.loads(capsys.readouterr().out)
    assert created["tenant"] == "acme"
    assert created["scopes"] == ["audit:read", "inference"]
    assert created["api_key"].startswith(f"ark_{created['id']}_")
    with stack.redis.client() as client:
        stored = client.get(stack.keys.api_key(created["id"]))
    assert stored is not None and created["api_key"].split("_")[2].encode() not in stored
    stack.worker("node-a")
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        response = await gw.client.post(
            "/v1/inference", json=chat(), headers={"X-API-Key": created["api_key"]}
        )
    assert response.status_code == 200


def test_keys_create_refuses_a_bad_tenant_name(
    env: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "create", "--tenant", "bad tenant!"]) == 2
    assert "tenant" in capsys.readouterr().err


def test_a_backend_that_needs_a_url_without_one_exits_2(
    env: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["worker", "--node-id", "n", "--pool", "p", "--backend", "ollama"]) == 2
    assert "--backend-url" in capsys.readouterr().err


async def _in_thread(argv: list[str]) -> int:
    """main() runs its own event loop, so call it off the test's loop."""
    import asyncio

    return await asyncio.to_thread(main, argv)


async def test_keys_lifecycle_from_the_command_line(
    env: Stack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    stack = env
    assert await _in_thread(["keys", "create", "--tenant", "acme", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert set(created) >= {"id", "tenant", "scopes", "api_key", "signing_secrets"}
    [first] = created["signing_secrets"]
    assert set(first) == {"id", "secret"} and first["secret"].startswith("arks_")
    key_id = created["id"]

    gateway = stack.gateway_process(check="healthz")
    monkeypatch.setenv("API_ROUTER_URL", gateway.url)
    monkeypatch.setenv("API_ROUTER_KEY_ID", key_id)
    monkeypatch.setenv("API_ROUTER_SIGNING_SECRET", first["secret"])
    body = tmp_path / "body.json"
    body.write_text(json.dumps(chat(model="nope")))
    assert await _in_thread(["request", "--sign", "GET", "/v1/models"]) == 0
    assert '"data"' in capsys.readouterr().out
    assert (
        await _in_thread(["request", "--sign", "POST", "/v1/inference", "--data", f"@{body}"]) == 1
    )
    assert '"model_not_found"' in capsys.readouterr().out  # authenticated, digest checked

    assert await _in_thread(["keys", "rotate", key_id, "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert await _in_thread(["keys", "rotate", key_id, "--retire", first["id"], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [s["id"] for s in shown["signing_secrets"]] == [second["id"]]
    assert await _in_thread(["keys", "list", "--tenant", "acme", "--json"]) == 0
    listed = capsys.readouterr().out
    assert key_id in listed and "arks_" not in listed
    assert await _in_thread(["keys", "revoke", key_id]) == 0
    capsys.readouterr()
    assert await _in_thread(["keys", "show", key_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "revoked"
    monkeypatch.setenv("API_ROUTER_SIGNING_SECRET", second["secret"])
    assert await _in_thread(["request", "--sign", "GET", "/v1/models"]) == 1
    assert '"key_revoked"' in capsys.readouterr().out
    with stack.redis.client() as client:
        actions = [json.loads(f[b"action"]) for _, f in client.xrange(stack.keys.audit_admin)]
    assert [a["action"] for a in actions] == [
        "keys.create",
        "keys.signing_secret.add",
        "keys.signing_secret.delete",
        "keys.revoke",
    ]
    assert all(a["actor"].startswith("cli:") for a in actions)


def test_serve_refuses_to_start_without_a_kek(
    env: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("API_ROUTER__AUTH__KEK")
    assert main(["serve"]) == 2
    assert "auth.kek: missing; set API_ROUTER__AUTH__KEK" in capsys.readouterr().err
    monkeypatch.setenv("API_ROUTER__AUTH__KEK", "c2hvcnQ=")
    assert main(["keys", "list", "--tenant", "acme"]) == 2
    assert "decodes to 5 bytes, not 32" in capsys.readouterr().err


def test_routing_commands_change_and_show_the_overrides(
    env: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    env.put_health(node_health("pi-1", models_loaded=["m"]))
    env.put_health(node_health("pi-2", models_loaded=["m"]))
    assert main(["routing", "drain", "pi-1", "--reason", "fan broken", "--ttl-s", "60"]) == 0
    assert main(["routing", "pin", "m", "pi-1", "pi-2", "--reason", "canary"]) == 0
    assert main(["routing", "weights", "m", "edge=2", "--reason", "more"]) == 0
    assert main(["routing", "weights", "m", "edge=0", "--reason", "none"]) == 2
    assert main(["routing", "drain", "nobody", "--reason", "x"]) == 2
    assert "unknown node" in capsys.readouterr().err
    assert main(["routing", "show"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert {n["node_id"]: n["drained"] for n in view["nodes"]} == {"pi-1": True, "pi-2": False}
    assert view["models"]["m"] == {"tiers": [{"edge": 2.0}], "pinned": ["pi-1", "pi-2"]}
    assert {(o["kind"], o["author"]) for o in view["overrides"]} == {
        ("drain", f"cli:{getpass.getuser()}"),
        ("pin", f"cli:{getpass.getuser()}"),
        ("weights", f"cli:{getpass.getuser()}"),
    }
    assert main(["routing", "undrain", "pi-1"]) == 0
    assert main(["routing", "unpin", "m"]) == 0
    assert main(["routing", "unpin", "m"]) == 1
    capsys.readouterr()
    assert main(["routing", "show"]) == 0
    assert [o["kind"] for o in json.loads(capsys.readouterr().out)["overrides"]] == ["weights"]
    with env.redis.client() as client:
        entries = client.xrange(env.keys.audit_admin)
    actions = [json.loads(fields[b"action"])["action"] for _, fields in entries]
    assert actions == [
        "routing.drain",
        "routing.pin",
        "routing.weights",
        "routing.undrain",
        "routing.unpin",
    ]
