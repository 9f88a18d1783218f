"""What a worker reports about its node, every few seconds, into the health registry."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

NonNegative = Annotated[float, msgspec.Meta(ge=0)]


class NodeHealth(msgspec.Struct, frozen=True):
    node_id: str
    pool: str
    models_loaded: list[str]
    models_available: list[str]
    ram_percent: NonNegative
    cpu_percent: NonNegative
    temp_celsius: float | None
    inflight: Annotated[int, msgspec.Meta(ge=0)]
    max_concurrency: Annotated[int, msgspec.Meta(ge=1)]
    available: bool
    last_seen: float  # epoch seconds, the worker's clock
    version: str
    # Added with protocol v2, with defaults, so that entries of either release decode on
    # both: the node's kind (its backend adapter: what it can honour, see
    # backends/capabilities.py; "" for a worker that predates it) and the newest stream
    # protocol version its worker reads.
    backend: str = ""
    protocol: Annotated[int, msgspec.Meta(ge=1)] = 1
    # Added with direct nodes (defaults as above): how the gateway reaches the node
    # (``streams``: through its worker; ``http``: it calls the backend itself, see
    # dispatch/http_transport.py), and the node's share of its pool's traffic.
    transport: Literal["streams", "http"] = "streams"
    weight: Annotated[float, msgspec.Meta(gt=0)] = 1.0

    @property
    def load(self) -> float:
        """Share of the node's job slots in use."""
        return self.inflight / self.max_concurrency


health_encoder = msgspec.json.Encoder()
health_decoder = msgspec.json.Decoder(NodeHealth)


def model_names(names: list[str]) -> frozenset[str]:
    """The names a model list answers to: Ollama reports ``llama3.2:latest`` for a model
    that clients ask for as ``llama3.2``."""
    aliases = {name.removesuffix(":latest") for name in names if name.endswith(":latest")}
    return frozenset(names) | aliases
