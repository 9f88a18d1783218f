"""The admin commands against a real gateway process, as an admin runs them: each command's
table read back by its header, and its ``--json`` parsed, with the exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_router.auth.key_record import Scope
from api_router.cli import main
from tests.support.audit_rows import request_rows
from tests.support.cli_output import ISO_UTC, parse_fields, parse_table
from tests.support.limits import write_policies
from tests.support.processes import GatewayProcess
from tests.support.recent_actions import recent_admin_actions
from tests.support.servers import wait_until
from tests.support.stack import Stack, bearer, chat, node_health

POLICIES: dict[str, Any] = {
    "plans": {
        "metered": {
            "requests_per_second": 50,
            "tokens_per_minute": 100_000,
            "budget": {"per_month": 2.0, "unit": "cost"},
        },
    },
    "tenants": {"acme": {"plan": "metered"}},
    "models": {"default": {"prompt_price_per_1k": 1.0, "completion_price_per_1k": 2.0}},
}


@dataclass
class Admin:
    """``api-router ...`` run through ``main``, as the console script runs it."""

    capsys: pytest.CaptureFixture[str]
    stack: Stack
    gateway: GatewayProcess
    admin_key: str

    def run(self, *argv: str, code: int = 0) -> str:
        got = main(list(argv))
        out, err = self.capsys.readouterr()
        assert got == code, f"{argv}: exit {got}\n{out}\n{err}"
        return out if code == 0 else err

    def json(self, *argv: str) -> Any:
        return json.loads(self.run(*argv, "--json"))

    def key(self, tenant: str, *scopes: Scope) -> str:
        return asyncio.run(self.stack.create_key(tenant, scopes=scopes or ("inference",)))

    def actions(self) -> list[dict[str, Any]]:
        """The admin actions the gateway audited, oldest first."""
        return recent_admin_actions(self.stack.redis, self.stack.keys.audit_admin)


@pytest.fixture
def admin(
    audited_stack: Stack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Admin]:
    """A gateway process with a worker and the policies above; the admin key and the URL
    in the environment, as an admin's shell would have them; the audit sink running."""
    stack = audited_stack
    stack.audit_sink()
    stack.worker("node-a")
    policies = write_policies(tmp_path / "policies.yaml", POLICIES)
    gateway = stack.gateway_process(limits={"policies_file": str(policies)})
    admin_key = asyncio.run(stack.create_key("ops", scopes=("admin",)))
    for name in [n for n in os.environ if n.startswith("API_ROUTER")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .run/dev.env up from here
    monkeypatch.setenv("API_ROUTER_URL", gateway.url)
    monkeypatch.setenv("API_ROUTER_ADMIN_KEY", admin_key)
    yield Admin(capsys, stack, gateway, admin_key)


def test_keys_create_list_show_rotate_and_revoke(admin: Admin) -> None:
    shown = parse_fields(admin.run("keys", "create", "--tenant", "acme", "--name", "ci"))
    assert (shown["tenant"], shown["name"], shown["scopes"]) == ("acme", "ci", "inference")
    assert ISO_UTC.match(shown["created at"]) and shown["expires at"] == "never"
    key_id, api_key = shown["id"], shown["api key"]
    assert api_key.startswith(f"ark_{key_id}_")
    first_secret = shown["signing secret"].split("(id ")[1].rstrip(")")
    created = admin.json(
        "keys", "create", "--tenant", "acme", "--scope", "inference", "--scope", "audit:read"
    )
    assert created["scopes"] == ["audit:read", "inference"] and created["api_key"]
    answer = httpx.post(f"{admin.gateway.url}/v1/inference", json=chat(), headers=bearer(api_key))
    assert answer.status_code == 200

    rows = parse_table(admin.run("keys", "list", "--tenant", "acme"))
    assert [r["ID"] for r in rows] == [key_id, created["id"]]
    assert rows[0]["NAME"] == "ci" and rows[0]["STATUS"] == "active"
    assert ISO_UTC.match(rows[0]["CREATED"]) and rows[1]["EXPIRES"] == "never"
    listed = admin.json("keys", "list", "--tenant", "acme")["data"]
    assert [k["id"] for k in listed] == [key_id, created["id"]]
    assert "arks_" not in json.dumps(listed)

    details = parse_fields(admin.run("keys", "show", key_id))
    assert (details["status"], details["revoked at"]) == ("active", "-")
    assert details["signing secrets"].startswith(f"{first_secret} (created ")
    new = admin.json("keys", "rotate", key_id)
    assert new["secret"].startswith("arks_")
    retired = admin.json("keys", "rotate", key_id, "--retire", first_secret)
    assert [s["id"] for s in retired["signing_secrets"]] == [new["id"]]
    assert "shown once" in admin.run("keys", "rotate", key_id)

    revoked = parse_fields(admin.run("keys", "revoke", key_id))
    assert revoked["status"] == "revoked" and ISO_UTC.match(revoked["revoked at"])
    assert admin.json("keys", "show", key_id)["status"] == "revoked"
    again = httpx.post(f"{admin.gateway.url}/v1/inference", json=chat(), headers=bearer(api_key))
    assert again.status_code == 401
    # Each change is audited under the admin key, not a local user.
    actor = admin.admin_key.split("_")[1]
    # Admin actions are written just after the answer (in batches of 0.1 s).
    wait_until(lambda: admin.actions()[-1]["action"] == "keys.revoke", 5, "the revoke audited")
    actions = admin.actions()
    assert [a["action"] for a in actions][-2:] == ["keys.signing_secret.add", "keys.revoke"]
    assert {a["actor"] for a in actions} == {actor}


def test_usage_tenants_and_audit(admin: Admin) -> None:
    key = admin.key("acme", "inference", "audit:read")
    url = admin.gateway.url
    answers = [
        httpx.post(f"{url}/v1/inference", json=chat(content=f"hi {n}"), headers=bearer(key))
        for n in range(3)
    ]
    assert [a.status_code for a in answers] == [200] * 3
    request_id = answers[-1].headers["x-request-id"]
    report = admin.json("usage", "--tenant", "acme")
    summary = parse_fields(admin.run("usage", "--tenant", "acme"))
    assert summary["requests"] == "3" == str(report["requests"])
    assert summary["plan"] == "metered (50 req/s, burst 50; 100000 tokens/min)"
    assert summary["tokens"] == (
        f"{report['total_tokens']} ({report['prompt_tokens']} prompt, "
        f"{report['completion_tokens']} completion)"
    )
    budget = report["budget"]
    assert summary["budget"].startswith(f"{budget['spent']:g} of 2 spent")
    [model] = parse_table(admin.run("usage", "--tenant", "acme").split("\n\n")[1])
    assert (model["MODEL"], model["REQUESTS"]) == ("llama3.2", "3")
    # Without --tenant: the key's own tenant, through GET /v1/usage.
    assert admin.json("usage", "--key", key) == report
    assert admin.json("tenants", "show", "acme") == report

    tenants = parse_table(admin.run("tenants", "list").split("\n", 1)[1])
    assert {(t["TENANT"], t["PLAN"], t["KEYS"], t["REQUESTS"]) for t in tenants} == {
        ("acme", "metered", "1", "3"),
        ("ops", "-", "1", "0"),
    }
    listing = admin.json("tenants", "list", "--month", report["month"])
    assert [t["tenant"] for t in listing["data"]] == ["acme", "ops"]

    # The listing reads the audit database: wait for the sink to have stored the three.
    database = admin.stack.database_url
    assert database is not None
    wait_until(lambda: len(request_rows(database)) >= 3, 30, "the audit rows stored")
    rows = parse_table(admin.run("audit", "list", "--tenant", "acme", "--limit", "2"))
    assert [r["REQUEST"] for r in rows][0] == request_id
    assert rows[0]["STATUS"] == "ok (200)" and rows[0]["NODE"] == "node-a"
    page = admin.json("audit", "list", "--tenant", "acme", "--limit", "2")
    assert len(page["data"]) == 2 and page["next_cursor"]
    older = admin.json("audit", "list", "--tenant", "acme", "--cursor", page["next_cursor"])
    assert [r["request_id"] for r in older["data"]] == [answers[0].headers["x-request-id"]]
    record = parse_fields(admin.run("audit", "show", request_id))
    assert (record["tenant"], record["model"], record["status"]) == ("acme", "llama3.2", "ok (200)")
    assert record["node"] == "node-a (pool edge)"
    assert admin.json("audit", "show", request_id)["cost"] == float(record["cost"])


def test_routing_show_and_overrides(admin: Admin) -> None:
    admin.stack.put_health(node_health("pi-2", models_loaded=["llama3.2:latest"]))
    wait_until(lambda: "pi-2" in admin.run("routing", "show"), 10, "the gateway to see pi-2")
    nodes = parse_table(admin.run("routing", "show"))
    node_a = next(n for n in nodes if n["NODE"] == "node-a")
    assert (node_a["STATE"], node_a["BREAKER"], node_a["DRAINED"]) == ("healthy", "closed", "no")
    view = admin.json("routing", "show")
    assert {n["node_id"]: n["breaker"] for n in view["nodes"]} == {
        "node-a": "closed",
        "pi-2": "closed",
    }

    drain = ("routing", "drain", "pi-2", "--reason", "fan", "--ttl-s", "60")
    drained = parse_fields(admin.run(*drain))
    assert (drained["kind"], drained["target"], drained["reason"]) == ("drain", "pi-2", "fan")
    assert ISO_UTC.match(drained["expires at"])
    pin = admin.json("routing", "pin", "llama3.2", "node-a", "--reason", "canary")
    weights = admin.json("routing", "weights", "llama3.2", "edge=2", "--reason", "more")
    assert (pin["nodes"], weights["weights"]) == (["node-a"], {"edge": 2.0})
    shown = admin.run("routing", "show")
    models = parse_table(shown.split("\n\n")[1])
    assert [m for m in models if m["MODEL"] == "llama3.2"] == [
        {"MODEL": "llama3.2", "TIERS (FAILOVER ORDER)": "edge=2", "PINNED TO": "node-a"}
    ]
    overrides = parse_table(shown.split("\n\n")[2])
    assert {(o["KIND"], o["TARGET"], o["SETTING"]) for o in overrides} == {
        ("drain", "pi-2", "drained"),
        ("pin", "llama3.2", "node-a"),
        ("weights", "llama3.2", "edge=2"),
    }
    assert "pi-2: removed" in admin.run("routing", "undrain", "pi-2")
    assert admin.json("routing", "unpin", "llama3.2")["override_ids"] == [pin["id"]]
    assert "is not pinned" in admin.run("routing", "unpin", "llama3.2", code=1)
    assert admin.run("routing", "remove", weights["id"]) == f"removed override {weights['id']}\n"
    assert admin.json("routing", "show")["overrides"] == []
    # Refused by the gateway's checks: a 400 (what was asked is wrong) exits 2.
    assert "400" in admin.run("routing", "weights", "llama3.2", "edge=0", "--reason", "x", code=2)
    assert "POOL=NUMBER" in admin.run("routing", "weights", "m", "edge", "--reason", "x", code=2)


def test_where_the_gateway_is_found_and_the_exit_codes(
    admin: Admin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("API_ROUTER_URL")
    monkeypatch.delenv("API_ROUTER_ADMIN_KEY")
    assert "no gateway to talk to" in admin.run("routing", "show", code=2)
    # make run's .run/dev.env, found from a directory below the one it is in.
    run_dir = tmp_path / "repo" / ".run"
    run_dir.mkdir(parents=True)
    (run_dir / "dev.env").write_text(
        f"API_ROUTER_URL={admin.gateway.url}\nAPI_ROUTER_ADMIN_KEY={admin.admin_key}\n"
    )
    below = tmp_path / "repo" / "services"
    below.mkdir()
    monkeypatch.chdir(below)
    assert admin.json("routing", "show")["nodes"][0]["node_id"] == "node-a"
    # Options win over the file, before or after the command.
    assert "cannot reach the gateway" in admin.run(
        "--url", "http://127.0.0.1:9", "routing", "show", code=1
    )
    assert "401 invalid_api_key" in admin.run(
        "keys", "list", "--tenant", "acme", "--admin-key", "ark_kaaaaaaaaaaaa_" + "a" * 32, code=1
    )
    assert "404 not_found" in admin.run("keys", "show", "kaaaaaaaaaaaa", code=1)
    assert "400 invalid_request" in admin.run("keys", "show", "nope", code=2)
    assert "400 invalid_request" in admin.run("usage", "--month", "2026-13", code=2)
    # The console script itself, as a shell runs it.
    done = subprocess.run(
        [str(Path(sys.executable).with_name("api-router")), "--json", "tenants", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=below,
    )
    assert done.returncode == 0, done.stderr
    assert [t["tenant"] for t in json.loads(done.stdout)["data"]] == ["acme", "ops"]


def test_help_reads_like_a_manual_and_completion_is_generated(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    manual = capsys.readouterr().out
    for section in ("NAME", "DESCRIPTION", "EXIT STATUS", "ENVIRONMENT", "EXAMPLES", "SEE ALSO"):
        assert f"\n{section}\n" in manual
    with pytest.raises(SystemExit) as exited:
        main(["completion", "bash"])
    assert exited.value.code == 0
    script = capsys.readouterr().out
    assert "complete" in script and "routing" in script and "--admin-key" in script
