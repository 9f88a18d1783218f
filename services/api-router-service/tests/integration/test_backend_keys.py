"""A worker's key for an OpenAI-compatible backend: read from a file (and read again when
it is rotated) or an environment variable, sent only to the backend's own URL, and never
shown in an answer or a log."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from api_router.cli import main
from tests.support.fake_openai import FakeOpenAI
from tests.support.processes import WorkerProcess
from tests.support.servers import eventually, wait_until
from tests.support.stack import Stack, bearer

KEY = "sk-first-0123456789"
ROTATED = "sk-second-9876543210"


@pytest.fixture
def backend() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(api_key=KEY).start()
    yield server
    server.stop()


def _openai_worker(stack: Stack, url: str, *key: str) -> WorkerProcess:
    """node-a's worker on an OpenAI-compatible backend, its key given by ``key``'s flag
    (``--backend-api-key-env`` names THE_KEY, which holds KEY)."""
    args = ("--backend", "openai", "--backend-url", url, *key)
    return stack.worker("node-a", *args, env={"THE_KEY": KEY})


def _chat(content: str = "hi") -> dict[str, object]:
    return {"model": "gpt-fake", "messages": [{"role": "user", "content": content}]}


async def test_the_key_comes_from_a_file_and_a_rotated_one_is_used_without_a_restart(
    stack: Stack, backend: FakeOpenAI, tmp_path: Path
) -> None:
    key_file = tmp_path / "backend.key"
    key_file.write_text(KEY + "\n")
    _openai_worker(stack, backend.url, "--backend-api-key-file", str(key_file))
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("gpt-fake")
        before = await gw.client.post("/v1/chat/completions", json=_chat(), headers=bearer(key))
        assert before.status_code == 200, before.text
        assert set(backend.authorizations) == {f"Bearer {KEY}"}
        # The secret is rotated: the backend takes only the new key from now on.
        key_file.write_text(ROTATED)
        backend.api_key = ROTATED
        seen = len(backend.authorizations)
        await eventually(
            lambda: f"Bearer {ROTATED}" in backend.authorizations[seen:], what="the new key"
        )
        # The health beats sent with the old key meanwhile took the node out for a moment.
        for _ in range(100):
            after = await gw.client.post("/v1/chat/completions", json=_chat(), headers=bearer(key))
            if after.status_code != 503:
                break
            await asyncio.sleep(0.05)
    assert after.status_code == 200, after.text
    assert backend.authorizations[-1] == f"Bearer {ROTATED}"
    assert KEY not in (stack.tmp / "worker-node-a.log").read_text()


async def test_a_redirect_is_not_followed_so_the_key_stays_with_its_backend(
    stack: Stack, backend: FakeOpenAI
) -> None:
    elsewhere = FakeOpenAI().start()
    try:
        backend.redirect_to = elsewhere.url
        worker = _openai_worker(stack, backend.url, "--backend-api-key-env", "THE_KEY")
        wait_until(lambda: "redirect" in worker.log(), what="the refused redirect")
    finally:
        elsewhere.stop()
    assert f"Bearer {KEY}" in backend.authorizations
    assert elsewhere.authorizations == []  # never asked, so never given the key
    assert KEY not in worker.log()


async def test_a_backend_refusal_is_a_400_that_never_shows_the_key(
    stack: Stack, backend: FakeOpenAI
) -> None:
    _openai_worker(stack, backend.url, "--backend-api-key-env", "THE_KEY")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("gpt-fake")
        backend.fail_status = 400  # and its message quotes the Authorization header
        refused = await gw.client.post("/v1/chat/completions", json=_chat(), headers=bearer(key))
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"] == (
        "node node-a refused the request: openai backend refused the request (HTTP 400): "
        "fake refusal of a request with Bearer [redacted]"
    )
    assert KEY not in refused.text


@pytest.mark.parametrize(
    ("key", "complaint"),
    [
        (["--backend-api-key-env", "API_ROUTER_TEST_UNSET_KEY"], "is not set"),
        (["--backend-api-key-file", "/nonexistent/key"], "cannot read the API key file"),
    ],
)
def test_a_missing_key_stops_the_worker_at_start(
    key: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["worker", "--node-id", "n", "--pool", "p", "--backend", "openai"]
    assert main([*argv, "--backend-url", "http://127.0.0.1:9", *key]) == 2
    assert complaint in capsys.readouterr().err
