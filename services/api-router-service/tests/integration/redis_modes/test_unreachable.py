"""Nobody answers at the configured cluster seeds or Sentinels: every command is the
catalog's 503 (``StoreUnavailable``), counted, naming the servers tried without secrets."""

from __future__ import annotations

from typing import Any

import pytest

from api_router.config.settings import RedisSettings
from api_router.errors import CATALOG, StoreUnavailable
from api_router.redis_store import StoreErrors, connect, store_errors
from tests.support.servers import free_port


@pytest.mark.parametrize(
    ("mode", "extra", "shown"),
    [
        ("cluster", {}, "redis cluster 127.0.0.1:{port}"),
        ("sentinel", {"master_name": "main"}, "redis sentinel main via 127.0.0.1:{port}"),
    ],
)
async def test_nobody_answering_is_the_catalogs_503(
    mode: str, extra: dict[str, Any], shown: str
) -> None:
    port = free_port()  # nothing listens there
    settings = RedisSettings(
        mode=mode,  # type: ignore[arg-type]
        nodes=f"127.0.0.1:{port}",
        password="s3cret-data",
        sentinel_password="s3cret-sentinel",
        connect_timeout_s=0.5,
        **extra,
    )
    errors = StoreErrors()
    client = connect(settings, errors=errors)
    try:
        with pytest.raises(StoreUnavailable) as failed, store_errors("the key store"):
            await client.get("api-router:key:k1")
    finally:
        await client.aclose()
    error = failed.value
    assert (error.code, CATALOG[error.code].status) == ("service_unavailable", 503)
    assert error.message == "the key store is unavailable, retry shortly"
    assert error.server == shown.format(port=port)
    assert error.for_operators.endswith(f"{error.server}: check it runs, or set redis.nodes)")
    assert "s3cret" not in error.for_operators
    assert errors.by_command["GET"] == 1
