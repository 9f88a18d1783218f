"""A request signed by the http-message-signatures library's own signer, with nothing of
ours on the client side, is accepted; and our client library works end to end."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
from dataclasses import dataclass, field

import httpx
from http_message_signatures import HTTPMessageSigner, HTTPSignatureKeyResolver, algorithms

from api_router.client import Client
from tests.support.stack import Stack, chat


@dataclass
class Message:
    """The message interface the library signs: method, absolute URL, headers."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


class OneKey(HTTPSignatureKeyResolver):
    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def resolve_private_key(self, key_id: str) -> bytes:
        return self.secret

    def resolve_public_key(self, key_id: str) -> bytes:
        return self.secret


async def test_the_reference_signer_is_accepted(stack: Stack) -> None:
    issued = await stack.issue_key()
    gateway = stack.gateway_process(check="healthz")
    body = json.dumps(chat(model="nope")).encode()
    url = f"{gateway.url}/v1/inference?trace=1"
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    message = Message(
        "POST",
        url,
        {"Content-Type": "application/json", "Content-Digest": f"sha-256=:{digest}:"},
    )
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.HMAC_SHA256,
        key_resolver=OneKey(issued.signing_secrets[0].secret.encode("ascii")),
    )
    signer.sign(
        message,
        key_id=issued.record.id,
        created=dt.datetime.now(dt.UTC),
        nonce=secrets.token_hex(16),
        covered_component_ids=(
            "@method",
            "@authority",
            "@path",
            "@query",
            "content-digest",
            "content-type",
        ),
    )
    async with httpx.AsyncClient() as client:
        response = await client.post(url, content=body, headers=message.headers)
    assert response.status_code == 404, response.text  # authenticated: routing found no model
    assert response.json()["error"]["code"] == "model_not_found"


async def test_our_client_signs_inference_requests(stack: Stack) -> None:
    issued = await stack.issue_key()
    stack.worker("node-a")
    gateway = stack.gateway_process()
    with Client(
        gateway.url, key_id=issued.record.id, signing_secret=issued.signing_secrets[0].secret
    ) as client:
        reply = client.inference("llama3.2", [{"role": "user", "content": "hi"}], max_tokens=8)
        models = client.request("GET", "/v1/models", params={"verbose": "1"})
        job = client.submit(
            "llama3.2", [{"role": "user", "content": "hi"}], idempotency_key="j1", max_tokens=8
        )
        same_job = client.submit(
            "llama3.2", [{"role": "user", "content": "hi"}], idempotency_key="j1", max_tokens=8
        )
        answer = client.result(job, wait_s=30)
    assert reply["object"] == "inference" and reply["message"]["content"]
    assert "data" in models
    assert same_job == job
    assert answer is not None
    assert (answer["id"], answer["message"]) == (job, reply["message"])
