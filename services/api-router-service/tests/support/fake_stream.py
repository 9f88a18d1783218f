"""The streamed answers of the fake Ollama, in its two dialects: Ollama's NDJSON
(``/api/chat``) and the OpenAI-compatible server-sent events (``/v1/chat/completions``)
that Ollama also serves. Both watch for the client closing the connection, as Ollama
does to stop generating, and count it on the fake (``disconnects``)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from tests.support.fake_ollama import FakeOllama


class Dialect(Protocol):
    content_type: bytes

    def piece(self, text: str) -> bytes: ...

    def end(self, prompt: int, completion: int) -> bytes: ...

    def failure(self) -> bytes: ...


class OllamaLines:
    content_type = b"application/x-ndjson"

    def __init__(self, model: str) -> None:
        self._model = model

    def piece(self, text: str) -> bytes:
        message = {"role": "assistant", "content": text}
        return _json({"model": self._model, "message": message, "done": False}) + b"\n"

    def end(self, prompt: int, completion: int) -> bytes:
        return (
            _json(
                {
                    "model": self._model,
                    "message": {"role": "assistant", "content": ""},
                    "done": True,
                    "done_reason": "stop",
                    "prompt_eval_count": prompt,
                    "eval_count": completion,
                }
            )
            + b"\n"
        )

    def failure(self) -> bytes:
        return _json({"error": "fake failure mid-stream"}) + b"\n"


class OpenAIEvents:
    content_type = b"text/event-stream"

    def __init__(self, model: str, include_usage: bool) -> None:
        self._model = model
        self._include_usage = include_usage

    def piece(self, text: str) -> bytes:
        return self._chunk([{"index": 0, "delta": {"content": text}, "finish_reason": None}])

    def end(self, prompt: int, completion: int) -> bytes:
        frames = self._chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        if self._include_usage:
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
            frames += self._chunk([], usage)
        return frames + b"data: [DONE]\n\n"

    def failure(self) -> bytes:
        return b"data: " + _json({"error": {"message": "fake failure mid-stream"}}) + b"\n\n"

    def _chunk(self, choices: list[dict[str, Any]], usage: object = None) -> bytes:
        chunk = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": self._model,
            "choices": choices,
            "usage": usage,
        }
        return b"data: " + _json(chunk) + b"\n\n"


class FakeStream:
    """An ASGI response sending ``pieces`` in a dialect, paced by the fake's settings."""

    def __init__(self, fake: FakeOllama, dialect: Dialect, pieces: list[str], prompt: int):
        self._fake = fake
        self._dialect = dialect
        self._pieces = pieces
        self._prompt = prompt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", self._dialect.content_type)],
            }
        )
        sender = asyncio.create_task(self._send_all(send))
        listener = asyncio.create_task(_disconnected(receive))
        await asyncio.wait({sender, listener}, return_when=asyncio.FIRST_COMPLETED)
        if not sender.done():  # the client went away mid-stream
            self._fake.disconnects += 1
            sender.cancel()
        listener.cancel()
        await asyncio.wait({sender, listener})

    async def _send_all(self, send: Send) -> None:
        fake, dialect = self._fake, self._dialect
        await asyncio.sleep(fake.first_chunk_delay_s)
        for i, piece in enumerate(self._pieces):
            if fake.fail_after_chunks is not None and i == fake.fail_after_chunks:
                await _body(send, dialect.failure(), more=False)
                return
            if i and fake.chunk_delay_s:
                await asyncio.sleep(fake.chunk_delay_s)
            await _body(send, dialect.piece(piece))
            fake.chunks_sent += 1
        await _body(send, dialect.end(self._prompt, len(self._pieces)), more=False)


def _json(obj: object) -> bytes:
    return msgspec.json.encode(obj)


async def _body(send: Send, body: bytes, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": more})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
