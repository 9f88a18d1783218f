"""The admin actions of the recent window in Redis, as an operator would read the stream."""

from __future__ import annotations

from typing import Any

import msgspec

from tests.support.servers import RedisServer


def recent_admin_actions(redis: RedisServer, stream: str) -> list[dict[str, Any]]:
    """Oldest first, each once: a write retried after a timeout or a cancellation may have
    added an entry twice (the audit database stores it once, by ``action_id``)."""
    with redis.client() as client:
        entries = client.xrange(stream)
    actions: dict[str, dict[str, Any]] = {}
    for _, fields in entries:
        action = msgspec.json.decode(fields[b"action"])
        actions.setdefault(action["action_id"], action)
    return list(actions.values())
