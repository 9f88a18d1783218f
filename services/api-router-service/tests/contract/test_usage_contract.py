"""Usage records read back from the broker match contracts/usage.record.schema.json."""

from __future__ import annotations

from jsonschema import Draft202012Validator

from api_router.contracts import load_contract
from tests.support.stack import Stack, chat
from tests.support.usage_topic import read_usage


async def test_records_on_the_topic_match_the_usage_contract(stack: Stack) -> None:
    stack.worker("node-a")
    key = await stack.create_key()
    headers = {"Authorization": f"Bearer {key}"}
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        await gw.client.post("/v1/inference", json=chat(), headers=headers)
        await gw.client.post("/v1/inference", json=chat(stream=True), headers=headers)
        await gw.client.post("/v1/inference", json=chat("no-such-model"), headers=headers)
    records = await read_usage(stack.broker.bootstrap, stack.usage_topic, 3)
    schema = load_contract("usage.record")
    validator = Draft202012Validator(schema)
    assert [r["status"] for r in records] == ["ok", "ok", "denied"]
    for record in records:
        validator.validate(record)
        # No field beyond the contract: consumers may decode strictly.
        assert set(record) == set(schema["$defs"]["UsageRecord"]["properties"])
