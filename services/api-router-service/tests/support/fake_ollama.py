"""A fake Ollama: a real HTTP server speaking ``/api/chat`` (text, tool calls, ``format``),
``/api/embed``, ``/api/tags`` and ``/api/ps``, and Ollama's OpenAI-compatible
``/v1/chat/completions`` and ``/v1/models``.

Tests steer it through plain attributes: which models it has and has loaded, how long it
takes to answer, an HTTP status to fail with, and the streaming knobs of ``FakeServer``.
It records every chat and embed body it received (``chats``, ``embeds``). What it answers
is ``fake_model.py``'s, in the voice "fake ollama".
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support import fake_model
from tests.support.fake_server import FakeServer
from tests.support.fake_stream import FakeStream, OllamaLines, OpenAIEvents

VOICE = "fake ollama"


class FakeOllama(FakeServer):
    def __init__(
        self,
        available: list[str] | None = None,
        loaded: list[str] | None = None,
        port: int | None = None,
    ) -> None:
        self.reset(available, loaded)
        routes = [
            Route("/api/chat", self._chat, methods=["POST"]),
            Route("/api/embed", self._embed, methods=["POST"]),
            Route("/api/tags", self._tags, methods=["GET"]),
            Route("/api/ps", self._ps, methods=["GET"]),
            # Ollama's OpenAI-compatible API, which the `openai` backend speaks.
            Route("/v1/chat/completions", self._openai_chat, methods=["POST"]),
            Route("/v1/models", self._openai_models, methods=["GET"]),
        ]
        super().__init__("fake-ollama", routes, port)

    def reset(self, available: list[str] | None = None, loaded: list[str] | None = None) -> None:
        self.available = available if available is not None else ["llama3.2:latest", "qwen2.5:7b"]
        self.loaded = loaded if loaded is not None else ["llama3.2:latest"]
        self.delay_s = 0.0
        self.fail_status: int | None = None
        self.chats: list[dict[str, Any]] = []
        self.embeds: list[dict[str, Any]] = []
        self.reset_stream()

    async def _chat(self, request: Request) -> Response:
        body, refusal = await self._received(request, self.chats)
        if refusal is not None:
            return refusal
        model, messages = body["model"], body["messages"]
        calls = fake_model.tool_calls(body)
        content = "" if calls else _content(body)
        prompt = fake_model.words(messages)
        if body.get("stream", True):  # Ollama streams unless told not to
            dialect = OllamaLines(model)
            frames = [dialect.piece(p) for p in self.text_pieces(content)] if content else []
            frames += dialect.calls(calls) if calls else []
            return FakeStream(self, dialect, frames, prompt)  # type: ignore[return-value]
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = [
                {"function": {"name": c.name, "arguments": c.arguments}} for c in calls
            ]
        return JSONResponse(
            {
                "model": model,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "message": message,
                "done": True,
                "done_reason": "stop",
                "total_duration": 1000,
                "prompt_eval_count": prompt,
                "eval_count": len(content.split()) + len(calls),
            }
        )

    async def _embed(self, request: Request) -> Response:
        body, refusal = await self._received(request, self.embeds)
        if refusal is not None:
            return refusal
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dimensions = body.get("dimensions") or 8
        return JSONResponse(
            {
                "model": body["model"],
                "embeddings": [fake_model.embedding(text, dimensions) for text in inputs],
                "prompt_eval_count": sum(len(text.split()) for text in inputs),
            }
        )

    async def _openai_chat(self, request: Request) -> Response:
        body, refusal = await self._received(request, self.chats)
        if refusal is not None:
            return refusal
        model, messages = body["model"], body["messages"]
        content = fake_model.text_reply(VOICE, messages)
        prompt = fake_model.words(messages)
        if body.get("stream", False):
            usage = bool(body.get("stream_options", {}).get("include_usage"))
            dialect = OpenAIEvents(model, usage)
            frames = [dialect.piece(p) for p in self.text_pieces(content)]
            return FakeStream(self, dialect, frames, prompt)  # type: ignore[return-value]
        completion = len(content.split())
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": content},
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
        )

    async def _openai_models(self, _request: Request) -> Response:
        models = [
            {"id": m, "object": "model", "created": 0, "owned_by": "library"}
            for m in self.available
        ]
        return JSONResponse({"object": "list", "data": models})

    async def _received(
        self, request: Request, log: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], Response | None]:
        """The body, and the refusal to answer instead, if the fake is told to fail."""
        body: dict[str, Any] = msgspec.json.decode(await request.body())
        log.append(body)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_status is not None:
            return body, JSONResponse({"error": "fake failure"}, status_code=self.fail_status)
        model = body["model"]
        if model not in self.available and f"{model}:latest" not in self.available:
            missing = JSONResponse({"error": f"model '{model}' not found"}, status_code=404)
            return body, missing
        return body, None

    async def _tags(self, _request: Request) -> Response:
        return JSONResponse({"models": [{"name": m, "model": m} for m in self.available]})

    async def _ps(self, _request: Request) -> Response:
        return JSONResponse({"models": [{"name": m, "model": m} for m in self.loaded]})


def _content(body: dict[str, Any]) -> str:
    """The text answer: JSON when ``format`` asks for it (``"json"`` or a schema)."""
    wanted = body.get("format")
    if wanted == "json":
        return fake_model.json_reply(None, body["messages"])
    if isinstance(wanted, dict):
        return fake_model.json_reply(wanted, body["messages"])
    return fake_model.text_reply(VOICE, body["messages"])


def fake_reply(messages: list[dict[str, Any]]) -> str:
    return fake_model.text_reply(VOICE, messages)


def main() -> None:
    """``python -m tests.support.fake_ollama PORT [DELAY_S]``: serve until killed (for
    benchmarks and drills), each answer after ``DELAY_S``."""
    import sys

    server = FakeOllama(port=int(sys.argv[1]))
    server.delay_s = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    server.serve_forever()


if __name__ == "__main__":
    main()
