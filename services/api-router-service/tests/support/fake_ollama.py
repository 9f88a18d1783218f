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
from starlette.types import Receive, Scope, Send

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
        # of `chunk_text`. `fail_after_chunks` ends the stream with an Ollama error line.
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
        self._thread.join(10)

    def serve_forever(self) -> None:
        """Serve on the calling thread (a process of its own, for benchmarks)."""
        self._server.run()

    async def _chat(self, request: Request) -> Response:
        body = msgspec.json.decode(await request.body())
        self.chats.append(body)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_status is not None:
            return JSONResponse({"error": "fake failure"}, status_code=self.fail_status)
        model = body["model"]
        if model not in self.available and f"{model}:latest" not in self.available:
            return JSONResponse({"error": f"model '{model}' not found"}, status_code=404)
        prompt_words = sum(len(m["content"].split()) for m in body["messages"])
        content = fake_reply(body["messages"])
        if body.get("stream", True):  # Ollama streams unless told not to
            if self.stream_chunks is None:
                words = content.split(" ")
                pieces = [w if i == 0 else f" {w}" for i, w in enumerate(words)]
            else:
                pieces = [self.chunk_text] * self.stream_chunks
            return _NdjsonStream(self, model, pieces, prompt_words)  # type: ignore[return-value]
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

    async def _tags(self, _request: Request) -> Response:
        return JSONResponse({"models": [{"name": m, "model": m} for m in self.available]})

    async def _ps(self, _request: Request) -> Response:
        return JSONResponse({"models": [{"name": m, "model": m} for m in self.loaded]})


class _NdjsonStream:
    """Ollama's streamed ``/api/chat``: one JSON object per line, the last with the counts.
    Watches for the client closing the connection, as Ollama does to stop generating."""

    def __init__(self, fake: FakeOllama, model: str, pieces: list[str], prompt: int) -> None:
        self._fake = fake
        self._model = model
        self._pieces = pieces
        self._prompt = prompt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/x-ndjson")]})  # fmt: skip
        sender = asyncio.create_task(self._send_all(send))
        listener = asyncio.create_task(_disconnected(receive))
        await asyncio.wait({sender, listener}, return_when=asyncio.FIRST_COMPLETED)
        if not sender.done():  # the client went away mid-stream
            self._fake.disconnects += 1
            sender.cancel()
        listener.cancel()
        await asyncio.wait({sender, listener})

    async def _send_all(self, send: Send) -> None:
        fake = self._fake
        await asyncio.sleep(fake.first_chunk_delay_s)
        for i, piece in enumerate(self._pieces):
            if fake.fail_after_chunks is not None and i == fake.fail_after_chunks:
                await self._line(send, {"error": "fake failure mid-stream"}, more=False)
                return
            if i and fake.chunk_delay_s:
                await asyncio.sleep(fake.chunk_delay_s)
            message = {"role": "assistant", "content": piece}
            await self._line(send, {"model": self._model, "message": message, "done": False})
            fake.chunks_sent += 1
        last = {"model": self._model, "message": {"role": "assistant", "content": ""},
                "done": True, "done_reason": "stop", "prompt_eval_count": self._prompt,
                "eval_count": len(self._pieces)}  # fmt: skip
        await self._line(send, last, more=False)

    @staticmethod
    async def _line(send: Send, obj: dict[str, Any], more: bool = True) -> None:
        body = msgspec.json.encode(obj) + b"\n"
        await send({"type": "http.response.body", "body": body, "more_body": more})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def fake_reply(messages: list[dict[str, str]]) -> str:
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    return f"fake ollama says: {last}"


def main() -> None:
    """``python -m tests.support.fake_ollama PORT``: serve until killed (for benchmarks)."""
    import sys

    FakeOllama(port=int(sys.argv[1])).serve_forever()


if __name__ == "__main__":
    main()
