"""A fake Ollama: a real HTTP server speaking ``/api/chat``, ``/api/tags`` and ``/api/ps``.

It runs uvicorn on its own thread and loop. Tests steer it through plain attributes: which
models it has and has loaded, how long it takes to answer, an HTTP status to fail with, and
for ``"stream": true`` how many NDJSON chunks to send, how fast, and whether to fail midway.
It counts the streams whose client closed the connection before the end (``disconnects``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.fake_stream import FakeStream, OllamaLines, OpenAIEvents
from tests.support.servers import free_port, wait_until


class FakeOllama:
    def __init__(
        self,
        available: list[str] | None = None,
        loaded: list[str] | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.reset(available, loaded)
        app = Starlette(
            routes=[
                Route("/api/chat", self._chat, methods=["POST"]),
                Route("/api/tags", self._tags, methods=["GET"]),
                Route("/api/ps", self._ps, methods=["GET"]),
                # Ollama's OpenAI-compatible API, which the `openai` backend speaks.
                Route("/v1/chat/completions", self._openai_chat, methods=["POST"]),
                Route("/v1/models", self._openai_models, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-ollama", daemon=True)

    def reset(self, available: list[str] | None = None, loaded: list[str] | None = None) -> None:
        self.available = available if available is not None else ["llama3.2:latest", "qwen2.5:7b"]
        self.loaded = loaded if loaded is not None else ["llama3.2:latest"]
        self.delay_s = 0.0
        self.fail_status: int | None = None
        self.chats: list[dict[str, Any]] = []
        # Streaming: None streams the reply word by word; a number sends that many chunks
        # of `chunk_text` (where "{i}" becomes the chunk's number). `fail_after_chunks`
        # ends the stream with an error line.
        self.stream_chunks: int | None = None
        self.chunk_text = "tok "
        self.chunk_delay_s = 0.0
        self.first_chunk_delay_s = 0.0
        self.fail_after_chunks: int | None = None
        self.chunks_sent = 0
        self.disconnects = 0

    def start(self) -> FakeOllama:
        self._thread.start()
        wait_until(lambda: self._server.started, what="fake ollama")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._server.force_exit = True  # answers still being delayed are not waited for
        self._thread.join(10)

    def serve_forever(self) -> None:
        """Serve on the calling thread (a process of its own, for benchmarks)."""
        self._server.run()

    async def _chat(self, request: Request) -> Response:
        body, refusal = await self._receive_chat(request)
        if refusal is not None:
            return refusal
        model, prompt_words = body["model"], _words(body["messages"])
        content = fake_reply(body["messages"])
        if body.get("stream", True):  # Ollama streams unless told not to
            stream = FakeStream(self, OllamaLines(model), self._pieces(content), prompt_words)
            return stream  # type: ignore[return-value]  # an ASGI response of our own
        return JSONResponse(
            {
                "model": model,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "message": {"role": "assistant", "content": content},
                "done": True,
                "done_reason": "stop",
                "total_duration": 1000,
                "prompt_eval_count": prompt_words,
                "eval_count": len(content.split()),
            }
        )

    async def _openai_chat(self, request: Request) -> Response:
        body, refusal = await self._receive_chat(request)
        if refusal is not None:
            return refusal
        model, prompt_words = body["model"], _words(body["messages"])
        content = fake_reply(body["messages"])
        if body.get("stream", False):
            usage = bool(body.get("stream_options", {}).get("include_usage"))
            dialect = OpenAIEvents(model, usage)
            return FakeStream(self, dialect, self._pieces(content), prompt_words)  # type: ignore[return-value]
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
                    "prompt_tokens": prompt_words,
                    "completion_tokens": completion,
                    "total_tokens": prompt_words + completion,
                },
            }
        )

    async def _openai_models(self, _request: Request) -> Response:
        models = [
            {"id": m, "object": "model", "created": 0, "owned_by": "library"}
            for m in self.available
        ]
        return JSONResponse({"object": "list", "data": models})

    async def _receive_chat(self, request: Request) -> tuple[dict[str, Any], Response | None]:
        """The body, and the refusal to answer instead, if the fake is told to fail."""
        body: dict[str, Any] = msgspec.json.decode(await request.body())
        self.chats.append(body)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_status is not None:
            return body, JSONResponse({"error": "fake failure"}, status_code=self.fail_status)
        model = body["model"]
        if model not in self.available and f"{model}:latest" not in self.available:
            missing = JSONResponse({"error": f"model '{model}' not found"}, status_code=404)
            return body, missing
        return body, None

    def _pieces(self, content: str) -> list[str]:
        if self.stream_chunks is not None:
            return [self.chunk_text.format(i=i) for i in range(self.stream_chunks)]
        words = content.split(" ")
        return [w if i == 0 else f" {w}" for i, w in enumerate(words)]

    async def _tags(self, _request: Request) -> Response:
        return JSONResponse({"models": [{"name": m, "model": m} for m in self.available]})

    async def _ps(self, _request: Request) -> Response:
        return JSONResponse({"models": [{"name": m, "model": m} for m in self.loaded]})


def _words(messages: list[dict[str, str]]) -> int:
    return sum(len(m["content"].split()) for m in messages)


def fake_reply(messages: list[dict[str, str]]) -> str:
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    return f"fake ollama says: {last}"


def main() -> None:
    """``python -m tests.support.fake_ollama PORT [DELAY_S]``: serve until killed (for
    benchmarks and drills), each answer after ``DELAY_S``."""
    import sys

    server = FakeOllama(port=int(sys.argv[1]))
    server.delay_s = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    server.serve_forever()


if __name__ == "__main__":
    main()
