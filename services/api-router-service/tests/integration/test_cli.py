"""`api-router` subcommands called through main(argv), as the console script does."""

from __future__ import annotations

import getpass
import importlib.metadata
import json
import os
from pathlib import Path

import pytest

from api_router.cli import main
from tests.support.recent_actions import recent_admin_actions
from tests.support.servers import free_port
from tests.support.stack import KEK, PEPPER, Stack, chat

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


async def test_keys_create_direct_prints_a_working_key_once(
    env: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bootstrap: no gateway, no admin key yet; the key is written to Redis."""
    stack = env
    argv = ["keys", "create", "--direct", "--tenant", "acme", "--scope", "inference"]
    code = await _in_thread([*argv, "--scope", "audit:read", "--name", "ci", "--json"])
    assert code == 0
    created = json.loads(capsys.readouterr().out)
    assert created["tenant"] == "acme"
    assert created["scopes"] == ["audit:read", "inference"]
    assert created["api_key"].startswith(f"ark_{created['id']}_")
    [secret] = created["signing_secrets"]
    assert set(secret) == {"id", "secret", "created_at"} and secret["secret"].startswith("arks_")
    with stack.redis.client() as client:
        stored = client.get(stack.keys.api_key(created["id"]))
    actions = recent_admin_actions(stack.redis, stack.keys.audit_admin)
    assert stored is not None and created["api_key"].split("_")[2].encode() not in stored
    assert [(a["action"], a["actor"]) for a in actions] == [
        ("keys.create", f"cli:{getpass.getuser()}")
    ]
    stack.worker("node-a")
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        response = await gw.client.post(
            "/v1/inference", json=chat(), headers={"X-API-Key": created["api_key"]}
        )
    assert response.status_code == 200

    assert await _in_thread(["keys", "create", "--direct", "--tenant", "ops"]) == 0
    shown = capsys.readouterr().out
    assert "api key:" in shown and "signing secret:" in shown and "shown once" in shown


def test_keys_create_refuses_a_bad_tenant_name(
    env: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "create", "--direct", "--tenant", "bad tenant!"]) == 2
    assert "tenant" in capsys.readouterr().err


def test_redis_away_is_named_by_its_url_without_credentials(
    pepper_only: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    monkeypatch.setenv("API_ROUTER__REDIS__URL", f"redis://admin:s3cret@127.0.0.1:{port}/0")
    assert main(["keys", "create", "--direct", "--tenant", "acme"]) == 1
    err = capsys.readouterr().err
    said = "the key store is unavailable, retry shortly (Redis at redis://127.0.0.1"
    assert f"{said}:{port}/0: check it runs, or set redis.url)" in err
    assert "s3cret" not in err and "admin" not in err


def test_a_backend_that_needs_a_url_without_one_exits_2(
    env: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["worker", "--node-id", "n", "--pool", "p", "--backend", "ollama"]) == 2
    assert "--backend-url" in capsys.readouterr().err


async def _in_thread(argv: list[str]) -> int:
    """main() runs its own event loop, so call it off the test's loop."""
    import asyncio

    return await asyncio.to_thread(main, argv)


def test_serve_refuses_to_start_without_a_kek(
    env: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("API_ROUTER__AUTH__KEK")
    assert main(["serve"]) == 2
    assert "auth.kek: missing; set API_ROUTER__AUTH__KEK" in capsys.readouterr().err
    monkeypatch.setenv("API_ROUTER__AUTH__KEK", "c2hvcnQ=")
    assert main(["keys", "create", "--direct", "--tenant", "acme"]) == 2
    assert "decodes to 5 bytes, not 32" in capsys.readouterr().err
