"""Signed requests through the gateway: what is accepted, and every refusal's code."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx

from api_router.auth.content_digest import content_digest
from tests.support.signing import SigningKey, sign
from tests.support.stack import Gateway, Stack, chat


def error_code(response: httpx.Response) -> str:
    body: dict[str, Any] = response.json()["error"]
    assert "arks_" not in body["message"]  # never a signing secret
    return str(body["code"])


async def post_signed(
    gw: Gateway, key: SigningKey, body: dict[str, Any] | None = None, **tweaks: Any
) -> httpx.Response:
    raw = json.dumps(body or chat(model="nope")).encode()
    headers = {
        "content-type": "application/json",
        **sign(key, "POST", "/v1/inference", raw, **tweaks),
    }
    return await gw.client.post("/v1/inference", content=raw, headers=headers)


async def test_a_signed_inference_is_answered_and_recorded_as_signed(stack: Stack) -> None:
    key = SigningKey.of(await stack.issue_key())
    stack.worker("node-a")
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        response = await post_signed(gw, key, chat())
        assert response.status_code == 200, response.text
        assert response.json()["message"]["content"]
        request_id = response.headers["x-request-id"]
        records: list[Any] = []

        async def fetch() -> None:
            records[:] = [await gw.services.audit.get(request_id)]

        deadline = time.monotonic() + 10
        while not (records and records[0] is not None) and time.monotonic() < deadline:
            await fetch()
        assert records[0] is not None
        assert records[0].auth_method == "signature"
        assert records[0].key_id == key.key_id


async def test_bearer_keys_without_signing_secrets_keep_working(stack: Stack) -> None:
    issued = await stack.issue_key()
    with stack.redis.client() as client:  # a record written before signatures existed
        record = json.loads(client.get(stack.keys.api_key(issued.record.id)))
        del record["signing_secrets"], record["auth"]
        client.set(stack.keys.api_key(issued.record.id), json.dumps(record))
    async with stack.gateway() as gw:
        response = await gw.client.get(
            "/v1/models", headers={"Authorization": f"Bearer {issued.api_key}"}
        )
        signed = await gw.client.get(
            "/v1/models", headers=sign(SigningKey.of(issued), "GET", "/v1/models")
        )
    assert response.status_code == 200
    assert signed.status_code == 401 and error_code(signed) == "invalid_signature"


async def test_missing_credentials_and_invalid_api_key(stack: Stack) -> None:
    async with stack.gateway() as gw:
        missing = await gw.client.get("/v1/models")
        bad = await gw.client.get("/v1/models", headers={"Authorization": "Bearer ark_nope"})
    assert (missing.status_code, error_code(missing)) == (401, "missing_credentials")
    assert (bad.status_code, error_code(bad)) == (401, "invalid_api_key")


async def test_unknown_key_id_and_wrong_secret_answer_alike(stack: Stack) -> None:
    key = SigningKey.of(await stack.issue_key())
    other = SigningKey.of(await stack.issue_key(tenant="globex"))
    async with stack.gateway() as gw:
        wrong_secret = await gw.client.get(
            "/v1/models", headers=sign(SigningKey(key.key_id, other.secret), "GET", "/v1/models")
        )
        unknown = await gw.client.get(
            "/v1/models", headers=sign(SigningKey("kaaaaaaaaaaaa", key.secret), "GET", "/v1/models")
        )
        # Another tenant's key id with our secret: nothing tells that the key exists.
        foreign = await gw.client.get(
            "/v1/models", headers=sign(SigningKey(other.key_id, key.secret), "GET", "/v1/models")
        )
    bodies = [r.json()["error"] for r in (wrong_secret, unknown, foreign)]
    assert {r.status_code for r in (wrong_secret, unknown, foreign)} == {401}
    assert {b["code"] for b in bodies} == {"invalid_signature"}
    assert len({b["message"] for b in bodies}) == 1
    assert other.key_id not in bodies[2]["message"]


async def test_revoked_and_expired_keys(stack: Stack) -> None:
    revoked = await stack.issue_key()
    expired = SigningKey.of(await stack.issue_key(expires_at=time.time() - 1))
    async with stack.key_store() as store:
        await store.revoke(revoked.record.id)
    async with stack.gateway() as gw:
        r1 = await gw.client.get(
            "/v1/models", headers=sign(SigningKey.of(revoked), "GET", "/v1/models")
        )
        r2 = await gw.client.get("/v1/models", headers=sign(expired, "GET", "/v1/models"))
    assert (r1.status_code, error_code(r1)) == (401, "key_revoked")
    assert (r2.status_code, error_code(r2)) == (401, "key_expired")


async def test_freshness_replay_digest_and_shape_refusals(stack: Stack) -> None:
    key = SigningKey.of(await stack.issue_key())
    async with stack.gateway() as gw:
        old = await post_signed(gw, key, created=int(time.time()) - 301)
        expired = await post_signed(gw, key, expires=int(time.time()) - 1)
        headers = sign(key, "GET", "/v1/models")
        first = await gw.client.get("/v1/models", headers=headers)
        replay = await gw.client.get("/v1/models", headers=headers)
        raw = json.dumps(chat(model="nope")).encode()
        tampered_headers = {
            "content-type": "application/json",
            **sign(key, "POST", "/v1/inference", raw),
        }
        tampered = await gw.client.post(
            "/v1/inference", content=raw.replace(b"nope", b"nopf"), headers=tampered_headers
        )
        no_nonce = await post_signed(gw, key, nonce=None)
        half = await gw.client.get(
            "/v1/models", headers={"signature-input": headers["signature-input"]}
        )
    assert (old.status_code, error_code(old)) == (401, "signature_expired")
    assert re.search(
        r"created is 30[12] s in the past .*at most 300 s", old.json()["error"]["message"]
    )
    assert (expired.status_code, error_code(expired)) == (401, "signature_expired")
    assert first.status_code == 200
    assert (replay.status_code, error_code(replay)) == (401, "replayed_request")
    assert (tampered.status_code, error_code(tampered)) == (401, "digest_mismatch")
    assert (no_nonce.status_code, error_code(no_nonce)) == (401, "malformed_signature")
    assert "nonce" in no_nonce.json()["error"]["message"]
    assert (half.status_code, error_code(half)) == (401, "malformed_signature")


async def test_missing_components_are_named(stack: Stack) -> None:
    key = SigningKey.of(await stack.issue_key())
    async with stack.gateway() as gw:
        no_digest = await post_signed(gw, key, components=["@method", "@path"])
        no_query = await gw.client.get(
            "/v1/models?x=1",
            headers=sign(key, "GET", "/v1/models", query="x=1", components=["@method", "@path"]),
        )
        wrong_alg = await post_signed(gw, key, alg="rsa-pss-sha512")
    assert error_code(no_digest) == "malformed_signature"
    assert '"content-digest"' in no_digest.json()["error"]["message"]
    assert error_code(no_query) == "malformed_signature"
    assert '"@query"' in no_query.json()["error"]["message"]
    assert error_code(wrong_alg) == "malformed_signature"


async def test_signature_required_by_key_and_by_tenant(stack: Stack, tmp_path: Path) -> None:
    strict = await stack.issue_key(auth="signature_required")
    policies = tmp_path / "policies.yaml"
    policies.write_text(
        "plans:\n  free: {}\ntenants:\n  strict-co:\n    plan: free\n"
        "    auth: signature_required\n  acme:\n    plan: free\n"
    )
    tenant_strict = await stack.issue_key(tenant="strict-co")
    relaxed = await stack.issue_key()
    async with stack.gateway(limits={"policies_file": str(policies)}) as gw:
        by_key = await gw.client.get("/v1/models", headers={"X-API-Key": strict.api_key})
        by_tenant = await gw.client.get(
            "/v1/models", headers={"Authorization": f"Bearer {tenant_strict.api_key}"}
        )
        signed = await gw.client.get(
            "/v1/models", headers=sign(SigningKey.of(tenant_strict), "GET", "/v1/models")
        )
        bearer_ok = await gw.client.get("/v1/models", headers={"X-API-Key": relaxed.api_key})
    assert (by_key.status_code, error_code(by_key)) == (401, "signature_required")
    assert (by_tenant.status_code, error_code(by_tenant)) == (401, "signature_required")
    assert signed.status_code == 200
    assert bearer_ok.status_code == 200


async def test_a_signed_key_without_the_scope_is_403(stack: Stack) -> None:
    key = SigningKey.of(await stack.issue_key(scopes=("inference",)))
    async with stack.gateway() as gw:
        response = await gw.client.get(
            "/v1/admin/keys",
            params={"tenant": "acme"},
            headers=sign(key, "GET", "/v1/admin/keys", query="tenant=acme"),
        )
    assert (response.status_code, error_code(response)) == (403, "insufficient_scope")


async def test_extra_components_and_several_signatures(stack: Stack) -> None:
    key = SigningKey.of(await stack.issue_key())
    async with stack.gateway() as gw:
        raw = json.dumps(chat(model="nope")).encode()
        components = [
            "@method",
            "@path",
            "@authority",
            "@target-uri",
            "@scheme",
            "content-type",
            "content-digest",
            "@request-target",
        ]
        content_type = {"content-type": "application/json"}
        extra = sign(key, "POST", "/v1/inference", raw, headers=content_type, components=components)
        covered = await gw.client.post("/v1/inference", content=raw, headers=extra)
        # A proxy's signature with a foreign key id first, ours second, in one header each.
        proxy = sign(SigningKey("proxy-key-1", "proxy-secret"), "GET", "/v1/models", label="proxy")
        ours = sign(key, "GET", "/v1/models", label="client")
        both = {
            "signature-input": f"{proxy['signature-input']}, {ours['signature-input']}",
            "signature": f"{proxy['signature']}, {ours['signature']}",
        }
        several = await gw.client.get("/v1/models", headers=both)
    # Authenticated and digest-checked: the request got as far as routing.
    assert (covered.status_code, error_code(covered)) == (404, "model_not_found")
    assert several.status_code == 200


async def test_rotation_accepts_old_and_new_secret_until_the_old_is_deleted(stack: Stack) -> None:
    issued = await stack.issue_key()
    old = SigningKey.of(issued)
    async with stack.key_store() as store:
        _, shown = await store.add_signing_secret(issued.record.id)
    new = SigningKey(issued.record.id, shown.secret)
    async with stack.gateway() as gw:
        with_old = await gw.client.get("/v1/models", headers=sign(old, "GET", "/v1/models"))
        with_new = await gw.client.get("/v1/models", headers=sign(new, "GET", "/v1/models"))
        async with stack.key_store() as store:
            await store.remove_signing_secret(issued.record.id, issued.signing_secrets[0].id)

        async def old_refused() -> bool:
            answer = await gw.client.get("/v1/models", headers=sign(old, "GET", "/v1/models"))
            return answer.status_code == 401

        deadline = time.monotonic() + 5
        while not await old_refused():
            assert time.monotonic() < deadline, "the deleted signing secret still verifies"
        still_new = await gw.client.get("/v1/models", headers=sign(new, "GET", "/v1/models"))
    assert with_old.status_code == 200
    assert with_new.status_code == 200
    assert still_new.status_code == 200


async def test_content_digest_of_an_empty_body_is_checked_too(stack: Stack) -> None:
    key = SigningKey.of(await stack.issue_key())
    async with stack.gateway() as gw:
        headers = sign(
            key,
            "GET",
            "/v1/models",
            headers={"content-digest": content_digest(b"")},
            components=["@method", "@path", "content-digest"],
        )
        response = await gw.client.get("/v1/models", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"object": "list", "data": []}  # no worker: no model yet


async def test_a_wrong_kek_fails_signatures_cleanly_and_leaves_bearer_use(stack: Stack) -> None:
    issued = await stack.issue_key()
    other_kek = base64.b64encode(bytes([7]) * 32).decode()
    async with stack.gateway(auth={"kek": other_kek}) as gw:
        signed = await gw.client.get(
            "/v1/models", headers=sign(SigningKey.of(issued), "GET", "/v1/models")
        )
        bearer = await gw.client.get("/v1/models", headers={"X-API-Key": issued.api_key})
    assert (signed.status_code, error_code(signed)) == (401, "invalid_signature")
    assert bearer.status_code == 200
