"""JSON Schemas of the public and stream contracts, shipped as package data.

Most are generated from the structs that decode and encode them (the registry is
``api/contract_registry.py``; ``python -m api_router.api.contract_registry`` rewrites them
and a contract test fails when they differ). ``inference.chunk`` and ``inference.done`` are
the ``data`` of a streamed answer's ``chunk`` and ``done`` events; ``chat.completion.chunk``
the ``data`` frames of an OpenAI stream. ``stream.job`` and ``stream.event`` describe Redis
stream entries, whose fields are all strings, and are written by hand.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Final

DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"
FOLDER: Final = Path(__file__).parent  # where the generated files are written
_SUFFIX = ".schema.json"


def contract_names() -> list[str]:
    """Every published contract, generated or written by hand."""
    files = resources.files(__package__).iterdir()
    return sorted(f.name.removesuffix(_SUFFIX) for f in files if f.name.endswith(_SUFFIX))


def load_contract(name: str) -> dict[str, Any]:
    """The schema ``contracts/<name>.schema.json``."""
    text = resources.files(__package__).joinpath(f"{name}{_SUFFIX}").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
