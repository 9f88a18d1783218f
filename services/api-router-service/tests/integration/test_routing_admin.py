"""Admin routing overrides: validated, audited, seen by another gateway process within a
second (pub/sub, else the periodic re-read), and ended by their TTL."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import msgspec

from api_router.usage.record import AdminAction
from tests.support.recent_actions import recent_admin_actions
from tests.support.servers import eventually
from tests.support.stack import Gateway, Stack, bearer, chat


async def put(gw: Gateway, path: str, key: str, body: dict[str, Any]) -> Any:
    return await gw.client.put(path, json=body, headers=bearer(key))


def process_view(url: str, key: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/v1/admin/routing", headers=bearer(key), timeout=5)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


async def ask(url: str, key: str, times: int = 4) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, headers=bearer(key)) as client:
        return [await client.post("/v1/inference", json=chat()) for _ in range(times)]


def node_of(view: dict[str, Any], node_id: str) -> dict[str, Any]:
    return next(n for n in view["nodes"] if n["node_id"] == node_id)


async def test_drain_pin_and_weights_reach_another_gateway_and_expire(stack: Stack) -> None:
    stack.worker("node-a", pool="edge")
    stack.worker("node-b", pool="gpu")
    admin = await stack.create_key(scopes=("admin", "inference"))
    other = stack.gateway_process("other", routing={"overrides_refresh_s": 0.5})
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2", nodes=2)
        drained = await gw.client.post(
            "/v1/admin/routing/nodes/node-a/drain",
            json={"reason": "maintenance", "ttl_s": 60},
            headers=bearer(admin),
        )
        assert drained.status_code == 201, drained.text
        override = drained.json()
        assert (override["kind"], override["target"], override["author"]) == (
            "drain",
            "node-a",
            admin.split("_")[1],
        )
        await eventually(
            lambda: node_of(process_view(other.url, admin), "node-a")["drained"],
            what="the drain on the other gateway",
        )
        answers = await ask(other.url, admin)
        assert {a.json()["node_id"] for a in answers} == {"node-b"}
        # Undrain, then pin the model to node-a: the other gateway follows.
        undrained = await gw.client.post(
            "/v1/admin/routing/nodes/node-a/undrain", headers=bearer(admin)
        )
        assert undrained.status_code == 200
        pinned = await put(
            gw,
            "/v1/admin/routing/models/llama3.2/pin",
            admin,
            {"nodes": ["node-a"], "reason": "canary", "ttl_s": 1.5},
        )
        assert pinned.status_code == 201, pinned.text
        await eventually(
            lambda: process_view(other.url, admin)["models"]["llama3.2"]["pinned"] == ["node-a"],
            what="the pin on the other gateway",
        )
        answers = await ask(other.url, admin)
        assert {a.json()["node_id"] for a in answers} == {"node-a"}
        # The pin expires by itself, on both gateways.
        await eventually(
            lambda: process_view(other.url, admin)["models"]["llama3.2"]["pinned"] is None,
            what="the pin's expiry",
        )
        await eventually(lambda: gw.services.overrides.current.pins == {}, what="local expiry")
        change = {"weights": {"edge": 0, "gpu": 2}, "reason": "edge is slow"}
        weights = await put(gw, "/v1/admin/routing/models/llama3.2/weights", admin, change)
        assert weights.status_code == 201, weights.text
        await eventually(
            lambda: (
                process_view(other.url, admin)["models"]["llama3.2"]["tiers"]
                == [{"edge": 0.0, "gpu": 2.0}]
            ),
            what="the weights on the other gateway",
        )
        answers = await ask(other.url, admin)
        assert {a.json()["node_id"] for a in answers} == {"node-b"}
        deleted = await gw.client.delete(
            f"/v1/admin/routing/overrides/{weights.json()['id']}", headers=bearer(admin)
        )
        assert deleted.status_code == 200
        await eventually(
            lambda: process_view(other.url, admin)["overrides"] == [], what="the deletion"
        )
    # The gateway has stopped: its audit writer has flushed.
    actions = [
        msgspec.convert(action, AdminAction)
        for action in recent_admin_actions(stack.redis, stack.keys.audit_admin)
    ]
    assert [a.action for a in actions] == [
        "routing.drain",
        "routing.undrain",
        "routing.pin",
        "routing.weights",
        "routing.weights.delete",
    ]
    assert all(a.actor == admin.split("_")[1] for a in actions)


async def test_invalid_overrides_are_400_and_unknown_targets_409(stack: Stack) -> None:
    stack.worker("node-a", pool="edge")
    admin = await stack.create_key(scopes=("admin",))
    user = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        path = "/v1/admin/routing/models/llama3.2/weights"
        cases: list[tuple[dict[str, Any], int, str]] = [
            ({"weights": {"edge": -1}, "reason": "r"}, 400, ">= 0"),
            ({"weights": {"edge": 0}, "reason": "r"}, 400, "all weights are zero"),
            ({"weights": {"edge": 1}}, 400, "reason"),
            # Well formed, but no node or route has such a pool now.
            ({"weights": {"nowhere": 1}, "reason": "r"}, 409, "unknown pool"),
        ]
        for body, status, reason in cases:
            response = await put(gw, path, admin, body)
            assert response.status_code == status, body
            error = response.json()["error"]
            assert error["code"] == ("invalid_request" if status == 400 else "conflict")
            assert reason in error["message"]
        pin = await put(
            gw, "/v1/admin/routing/models/llama3.2/pin", admin, {"nodes": ["ghost"], "reason": "r"}
        )
        assert pin.status_code == 409 and "unknown node" in pin.json()["error"]["message"]
        drain = await gw.client.post(
            "/v1/admin/routing/nodes/ghost/drain",
            json={"reason": "r"},
            headers=bearer(admin),
        )
        assert drain.status_code == 409
        forbidden = await gw.client.get("/v1/admin/routing", headers=bearer(user))
        assert forbidden.status_code == 403
        view = (await gw.client.get("/v1/admin/routing", headers=bearer(admin))).json()
    assert view["overrides"] == []
    assert node_of(view, "node-a") | {"models_loaded": None} == {
        "node_id": "node-a",
        "pool": "edge",
        "state": "healthy",
        "breaker": "closed",
        "inflight": 0,
        "max_concurrency": 2,
        "drained": False,
        "transport": "streams",
        "models_loaded": None,
    }


async def test_every_node_drained_is_503_no_capacity_with_retry_after_and_audited_so(
    stack: Stack,
) -> None:
    stack.worker("node-a")
    admin = await stack.create_key(scopes=("admin", "inference"))
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        drained = await gw.client.post(
            "/v1/admin/routing/nodes/node-a/drain", json={"reason": "all"}, headers=bearer(admin)
        )
        assert drained.status_code == 201
        await eventually(lambda: "node-a" in gw.services.overrides.current.drained)
        refused = await gw.client.post("/v1/inference", json=chat(), headers=bearer(admin))
        request_id = refused.headers["x-request-id"]
        record = None
        for _ in range(100):  # written just after the answer, off the response path
            record = await gw.services.audit.get(request_id)
            if record is not None:
                break
            await asyncio.sleep(0.05)
    assert (refused.status_code, refused.json()["error"]["code"]) == (503, "no_capacity")
    assert refused.headers["retry-after"] == "2"
    assert record is not None
    assert (record.status, record.http_status, record.error_code) == (
        "no_capacity",
        503,
        "no_capacity",
    )
