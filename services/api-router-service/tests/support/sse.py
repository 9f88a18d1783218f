"""Reading server-sent events the way a client would (comments are heartbeats)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServerEvent:
    event: str  # "message" when the frame names none (OpenAI's spelling)
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def parse_sse(text: str) -> tuple[list[ServerEvent], int]:
    """The events of a whole or partial stream, and how many comment lines it held."""
    events: list[ServerEvent] = []
    comments = 0
    for frame in text.split("\n\n"):
        if not frame.strip():
            continue
        name, data = "message", []
        for line in frame.split("\n"):
            if line.startswith(":"):
                comments += 1
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            events.append(ServerEvent(name, "\n".join(data)))
    return events, comments
