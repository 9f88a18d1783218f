"""A fake OpenAI-compatible server (as vLLM or llama.cpp serve): ``/v1/chat/completions``
(text, tool calls, JSON output; whole or streamed with tool-call pieces),
``/v1/embeddings`` (float or base64, ``dimensions``) and ``/v1/models``.

With ``api_key`` set it answers 401 to any request without that bearer key; it records
the ``Authorization`` header of every request (``authorizations``) and every body
(``chats``, ``embeds``). ``redirect_to`` makes it answer every request with a 307 there.
What it answers is ``fake_model.py``'s, in the voice "fake openai".
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.support import fake_model
from tests.support.fake_server import FakeServer
from tests.support.fake_stream import FakeStream, OpenAIEvents

VOICE = "fake openai"


class FakeOpenAI(FakeServer):
    def __init__(self, models: list[str] | None = None, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.reset(models)
        routes = [
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
        ]
        super().__init__("fake-openai", routes)

    def reset(self, models: list[str] | None = None) -> None:
        self.models = models if models is not None else ["gpt-fake"]
        self.redirect_to: str | None = None
        self.fail_status: int | None = None
        self.delay_s = 0.0
        self.authorizations: list[str | None] = []
        self.chats: list[dict[str, Any]] = []
        self.embeds: list[dict[str, Any]] = []
        self.reset_stream()

    async def _chat(self, request: Request) -> Response:
        body, refusal = await self._received(request, self.chats)
        if refusal is not None:
            return refusal
        model, messages = body["model"], body["messages"]
        calls = fake_model.tool_calls(body)
        if body.get("parallel_tool_calls") is False:
            calls = calls[:1]
        content = "" if calls else _content(body)
        reason = "tool_calls" if calls else "stop"
        prompt = fake_model.words(messages)
        if body.get("stream", False):
            usage = bool(body.get("stream_options", {}).get("include_usage"))
            dialect = OpenAIEvents(model, usage)
            frames = [dialect.piece(p) for p in self.text_pieces(content)] if content else []
            frames += dialect.calls(calls) if calls else []
            return FakeStream(self, dialect, frames, prompt, reason)  # type: ignore[return-value]
        message: dict[str, Any] = {"role": "assistant", "content": content or None}
        if calls:
            message["tool_calls"] = [
                {
                    "id": f"call_fake_{i}",
                    "type": "function",
                    "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                }
                for i, c in enumerate(calls)
            ]
        completion = len(content.split()) + len(calls)
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "finish_reason": reason, "message": message}],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
        )

    async def _embeddings(self, request: Request) -> Response:
        body, refusal = await self._received(request, self.embeds)
        if refusal is not None:
            return refusal
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dimensions = body.get("dimensions") or 8
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(inputs):
            vector = fake_model.embedding(text, dimensions)
            packed = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append(
                {
                    "object": "embedding",
                    "index": index,
                    "embedding": packed if as_base64 else vector,
                }
            )
        prompt = sum(len(text.split()) for text in inputs)
        return JSONResponse(
            {
                "object": "list",
                "data": data[::-1],  # out of order: the index is what counts
                "model": body["model"],
                "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
            }
        )

    async def _models(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        models = [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models
        ]
        return JSONResponse({"object": "list", "data": models})

    async def _received(
        self, request: Request, log: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], Response | None]:
        refusal = self._refusal(request)
        body: dict[str, Any] = msgspec.json.decode(await request.body())
        if refusal is not None:
            return body, refusal
        log.append(body)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_status is not None:
            # A careless server's message, quoting what it was sent (the key included).
            said = f"fake refusal of a request with {request.headers.get('authorization')}"
            error = {"error": {"message": said, "type": "invalid_request_error"}}
            return body, JSONResponse(error, status_code=self.fail_status)
        if body["model"] not in self.models:
            error = {"error": {"message": f"The model `{body['model']}` does not exist."}}
            return body, JSONResponse(error, status_code=404)
        return body, None

    def _refusal(self, request: Request) -> Response | None:
        authorization = request.headers.get("authorization")
        self.authorizations.append(authorization)
        if self.redirect_to is not None:
            return RedirectResponse(self.redirect_to + request.url.path, status_code=307)
        if self.api_key is not None and authorization != f"Bearer {self.api_key}":
            error = {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}
            return JSONResponse(error, status_code=401)
        return None


def _content(body: dict[str, Any]) -> str:
    wanted = body.get("response_format") or {}
    if wanted.get("type") == "json_object":
        return fake_model.json_reply(None, body["messages"])
    if wanted.get("type") == "json_schema":
        return fake_model.json_reply(wanted["json_schema"].get("schema"), body["messages"])
    return fake_model.text_reply(VOICE, body["messages"])
