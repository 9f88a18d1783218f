"""The admin key API: secrets shown once, never listed; every change audited."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.support.signing import SigningKey, sign
from tests.support.stack import Gateway, Stack


async def admin_call(
    gw: Gateway,
    admin: SigningKey,
    method: str,
    path: str,
    body: Any = None,
    query: str | None = None,
) -> httpx.Response:
    raw = json.dumps(body).encode() if body is not None else b""
    headers = sign(admin, method, path, raw, query=query)
    if raw:
        headers["content-type"] = "application/json"
    url = path + (f"?{query}" if query else "")
    return await gw.client.request(method, url, content=raw, headers=headers)


async def test_create_list_show_rotate_revoke(stack: Stack) -> None:
    admin = SigningKey.of(await stack.issue_key(tenant="ops", scopes=("admin",)))
    async with stack.gateway() as gw:
        wanted = {"tenant": "acme", "name": "ci", "scopes": ["inference"]}
        created = await admin_call(gw, admin, "POST", "/v1/admin/keys", wanted)
        assert created.status_code == 201, created.text
        new = created.json()
        assert new["api_key"].startswith(f"ark_{new['id']}_")
        assert [set(s) for s in new["signing_secrets"]] == [{"id", "secret", "created_at"}]
        key = SigningKey(new["id"], new["signing_secrets"][0]["secret"])
        used = await gw.client.get("/v1/models", headers=sign(key, "GET", "/v1/models"))
        assert used.status_code == 200
        await gw.services.authenticator._last_used.flush()

        listed = await admin_call(gw, admin, "GET", "/v1/admin/keys", query="tenant=acme")
        shown = await admin_call(gw, admin, "GET", f"/v1/admin/keys/{key.key_id}")
        added = await admin_call(gw, admin, "POST", f"/v1/admin/keys/{key.key_id}/signing-secrets")
        third = await admin_call(gw, admin, "POST", f"/v1/admin/keys/{key.key_id}/signing-secrets")
        old_id = new["signing_secrets"][0]["id"]
        deleted = await admin_call(
            gw, admin, "DELETE", f"/v1/admin/keys/{key.key_id}/signing-secrets/{old_id}"
        )
        revoked = await admin_call(gw, admin, "POST", f"/v1/admin/keys/{key.key_id}/revoke")
        after = await gw.client.get(
            "/v1/models",
            headers=sign(SigningKey(key.key_id, added.json()["secret"]), "GET", "/v1/models"),
        )
        missing = await admin_call(gw, admin, "GET", "/v1/admin/keys/kaaaaaaaaaaaa")
        await gw.services.audit.aclose()
        actions = await gw.services.audit.admin_actions()

    for response in (listed, shown):
        assert new["signing_secrets"][0]["secret"] not in response.text
        assert new["api_key"].split("_")[2] not in response.text
        assert "sealed" not in response.text
    assert [k["id"] for k in listed.json()["data"]] == [key.key_id]
    assert shown.json()["last_used_at"] is not None
    assert added.status_code == 201 and added.json()["secret"].startswith("arks_")
    assert third.status_code == 409 and third.json()["error"]["code"] == "conflict"
    assert [s["id"] for s in deleted.json()["signing_secrets"]] == [added.json()["id"]]
    assert revoked.json()["status"] == "revoked"
    assert after.status_code == 401 and after.json()["error"]["code"] == "key_revoked"
    assert missing.status_code == 404
    recorded = [(a.action, a.target, a.actor) for a in reversed(actions)]
    assert recorded == [
        ("keys.create", key.key_id, admin.key_id),
        ("keys.signing_secret.add", key.key_id, admin.key_id),
        ("keys.signing_secret.delete", key.key_id, admin.key_id),
        ("keys.revoke", key.key_id, admin.key_id),
    ]
    assert all(a.request_id and a.at for a in actions)
    assert "arks_" not in json.dumps([a.details for a in actions])


async def test_bad_bodies_and_ids_are_400(stack: Stack) -> None:
    admin = SigningKey.of(await stack.issue_key(tenant="ops", scopes=("admin",)))
    async with stack.gateway() as gw:
        bad_scope = await admin_call(
            gw, admin, "POST", "/v1/admin/keys", {"tenant": "acme", "scopes": ["root"]}
        )
        bad_id = await admin_call(gw, admin, "GET", "/v1/admin/keys/nope")
        no_tenant = await admin_call(gw, admin, "GET", "/v1/admin/keys")
    assert bad_scope.status_code == 400
    assert bad_id.status_code == 400
    assert no_tenant.status_code == 400
