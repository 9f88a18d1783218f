"""Backend adapters, picked by name: ``ollama``, ``openai`` or ``mock``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from api_router.backends.base import Backend
from api_router.backends.mock import MockBackend
from api_router.backends.ollama import OllamaBackend
from api_router.backends.openai import OpenAIBackend

BackendName = Literal["ollama", "openai", "mock"]


@dataclass(frozen=True, slots=True)
class BackendSpec:
    url: str | None = None
    models: Sequence[str] = ("mock",)
    mock_latency_s: float = 0.0
    mock_tokens_per_second: float = 0.0
    # The HTTP backends' key as of now (backends/api_key.py), sent only to `url`.
    api_key: Callable[[], str | None] | None = None


def _http(
    factory: Callable[[str, Callable[[], str | None] | None], Backend], name: str
) -> Callable[[BackendSpec], Backend]:
    def build(spec: BackendSpec) -> Backend:
        if not spec.url:
            raise ValueError(f"the {name} backend needs --backend-url")
        return factory(spec.url, spec.api_key)

    return build


BACKENDS: Final[dict[BackendName, Callable[[BackendSpec], Backend]]] = {
    "ollama": _http(OllamaBackend, "ollama"),
    "openai": _http(OpenAIBackend, "openai"),
    "mock": lambda spec: MockBackend(spec.models, spec.mock_latency_s, spec.mock_tokens_per_second),
}


def build_backend(name: BackendName, spec: BackendSpec) -> Backend:
    return BACKENDS[name](spec)
