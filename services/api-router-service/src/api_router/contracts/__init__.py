"""JSON Schemas of the public and stream contracts, shipped as package data.

The HTTP contracts (``inference.*``, ``chat.completion*``, ``model.list``, ``error``,
``openai.error``, ``audit.record``, ``admin.key*`` of the admin key API) and the Kafka
message ``usage.record`` are generated from the structs that decode and encode them
(``python -m api_router.contracts`` rewrites the files; a contract test fails when they
differ). ``inference.chunk`` and
``inference.done`` are the ``data`` of a streamed answer's ``chunk`` and ``done`` events;
``chat.completion.chunk`` the ``data`` frames of an OpenAI stream. ``stream.job`` and
``stream.event`` describe Redis
stream entries, whose fields are all strings, and are written by hand.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Final

CONTRACT_NAMES: Final = (
    "inference.request",
    "inference.response",
    "inference.chunk",
    "inference.done",
    "chat.completion.request",
    "chat.completion",
    "chat.completion.chunk",
    "model.list",
    "error",
    "openai.error",
    "usage.record",
    "audit.record",
    "admin.key.create.request",
    "admin.key.created",
    "admin.key",
    "admin.key.list",
    "admin.key.signing_secret",
    "stream.job",
    "stream.event",
)
DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"


def load_contract(name: str) -> dict[str, Any]:
    """The schema ``contracts/<name>.schema.json``."""
    text = resources.files(__package__).joinpath(f"{name}.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
