"""The streamed answers of the fake servers, in their two dialects: Ollama's NDJSON
(``/api/chat``) and OpenAI's server-sent events (``/v1/chat/completions``, which Ollama
serves too). Both watch for the client closing the connection, as Ollama does to stop
generating, and count it on the fake (``disconnects``)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
from starlette.types import Receive, Scope, Send

from tests.support.fake_model import FakeCall

if TYPE_CHECKING:
    from tests.support.fake_server import FakeServer


class Dialect(Protocol):
    content_type: bytes

    def piece(self, text: str) -> bytes: ...

    def calls(self, calls: list[FakeCall]) -> list[bytes]: ...

    def end(self, prompt: int, completion: int, reason: str) -> bytes: ...

    def failure(self) -> bytes: ...


class OllamaLines:
    """Text piece by piece; tool calls whole, in one line (as Ollama sends them)."""

    content_type = b"application/x-ndjson"

    def __init__(self, model: str) -> None:
        self._model = model

    def piece(self, text: str) -> bytes:
        return self._line({"role": "assistant", "content": text})

    def calls(self, calls: list[FakeCall]) -> list[bytes]:
        made = [{"function": {"name": c.name, "arguments": c.arguments}} for c in calls]
        return [self._line({"role": "assistant", "content": "", "tool_calls": made})]

    def end(self, prompt: int, completion: int, reason: str) -> bytes:
        last = {
            "model": self._model,
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",  # Ollama's word even when it stopped to call tools
            "prompt_eval_count": prompt,
            "eval_count": completion,
        }
        return _json(last) + b"\n"

    def failure(self) -> bytes:
        return _json({"error": "fake failure mid-stream"}) + b"\n"

    def _line(self, message: dict[str, Any]) -> bytes:
        return _json({"model": self._model, "message": message, "done": False}) + b"\n"


class OpenAIEvents:
    """Text piece by piece; each tool call as a first piece (id, name) and its arguments
    in two more (as OpenAI-compatible servers stream them)."""

    content_type = b"text/event-stream"

    def __init__(self, model: str, include_usage: bool) -> None:
        self._model = model
        self._include_usage = include_usage

    def piece(self, text: str) -> bytes:
        return self._chunk([{"index": 0, "delta": {"content": text}, "finish_reason": None}])

    def calls(self, calls: list[FakeCall]) -> list[bytes]:
        frames = []
        for index, call in enumerate(calls):
            arguments = json.dumps(call.arguments)
            middle = len(arguments) // 2
            first = {
                "index": index,
                "id": f"call_fake_{index}",
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            frames.append(self._delta(first))
            for part in (arguments[:middle], arguments[middle:]):
                frames.append(self._delta({"index": index, "function": {"arguments": part}}))
        return frames

    def end(self, prompt: int, completion: int, reason: str) -> bytes:
        frames = self._chunk([{"index": 0, "delta": {}, "finish_reason": reason}])
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

    def _delta(self, call: dict[str, Any]) -> bytes:
        choice = {"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}
        return self._chunk([choice])

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
    """An ASGI response sending ``frames`` (a dialect's pieces), paced by the fake's
    settings, then the dialect's end."""

    def __init__(
        self,
        fake: FakeServer,
        dialect: Dialect,
        frames: list[bytes],
        prompt: int,
        reason: str = "stop",
    ) -> None:
        self._fake = fake
        self._dialect = dialect
        self._frames = frames
        self._prompt = prompt
        self._reason = reason

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
        for i, frame in enumerate(self._frames):
            if fake.fail_after_chunks is not None and i == fake.fail_after_chunks:
                await _body(send, dialect.failure(), more=False)
                return
            if i and fake.chunk_delay_s:
                await asyncio.sleep(fake.chunk_delay_s)
            await _body(send, frame)
            fake.chunks_sent += 1
        end = dialect.end(self._prompt, len(self._frames), self._reason)
        await _body(send, end, more=False)


def _json(obj: object) -> bytes:
    return msgspec.json.encode(obj)


async def _body(send: Send, body: bytes, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": more})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
