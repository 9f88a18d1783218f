"""What the fake model servers share: uvicorn on a thread of its own, and the knobs that
pace and break their streamed answers (``fake_stream.py`` reads them)."""

from __future__ import annotations

import threading
from typing import Self

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

from tests.support.servers import free_port, wait_until


class FakeServer:
    def __init__(self, name: str, routes: list[Route], port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._name = name
        config = uvicorn.Config(
            Starlette(routes=routes),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=name, daemon=True)
        self.reset_stream()

    def reset_stream(self) -> None:
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

    def start(self) -> Self:
        self._thread.start()
        wait_until(lambda: self._server.started, what=self._name)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._server.force_exit = True  # answers still being delayed are not waited for
        self._thread.join(10)

    def serve_forever(self) -> None:
        """Serve on the calling thread (a process of its own, for benchmarks)."""
        self._server.run()

    def text_pieces(self, content: str) -> list[str]:
        """What a streamed text answer is sent as (word by word, unless told otherwise)."""
        if self.stream_chunks is not None:
            return [self.chunk_text.format(i=i) for i in range(self.stream_chunks)]
        words = content.split(" ")
        return [w if i == 0 else f" {w}" for i, w in enumerate(words)]
