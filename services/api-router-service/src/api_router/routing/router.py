"""The routing stage of a replica: what the engine needs, gathered without a Redis read.

The health snapshot, the policies and the overrides are each replaced whole by their own
background task; a request reads the current references once and gets one plan.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from api_router.backends.capabilities import honours, refusal
from api_router.config.policies import Policies
from api_router.config.settings import RoutingSettings
from api_router.routing.breaker import Breakers
from api_router.routing.engine import RoutePlan, RoutingEngine
from api_router.routing.node_health import NodeHealth
from api_router.routing.override_set import OverrideSet
from api_router.routing.retry import RetryBudget
from api_router.routing.snapshot import RoutingSnapshot


class Router:
    def __init__(
        self,
        settings: RoutingSettings,
        snapshot: Callable[[], RoutingSnapshot],
        policies: Callable[[], Policies | None],
        overrides: Callable[[], OverrideSet],
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.snapshot = snapshot
        self.overrides = overrides
        self._policies = policies
        self.breakers = Breakers(settings.breaker_failures, settings.breaker_open_s)
        self.budget = RetryBudget(
            settings.retry_budget_ratio,
            settings.retry_budget_window_s,
            settings.retry_budget_min_retries,
        )
        # Enough candidates for every attempt plus a few full nodes to skip.
        self.engine = RoutingEngine(rng, limit=settings.max_attempts + 5)

    def plan(
        self, model: str, session_id: str | None = None, asks: frozenset[str] = frozenset()
    ) -> RoutePlan:
        """The request's plan over the nodes whose kind honours ``asks`` (the request's
        features); raises ``model_not_found``, ``unsupported_parameter`` (no node of the
        model's could honour them) or ``no_capacity``."""
        snapshot = self.snapshot()
        capable = None
        if asks:
            kinds = snapshot.kinds.get(model, frozenset())
            if kinds and not any(honours(kind, asks) for kind in kinds):
                raise refusal(model, asks, kinds)

            def capable(node: NodeHealth) -> bool:
                return honours(node.backend, asks)

        return self.engine.choose(
            snapshot,
            model,
            self.routes(model),
            self.overrides(),
            self.breakers,
            session_id,
            capable,
        )

    def policies(self) -> Policies | None:
        return self._policies()

    def routes(self, model: str) -> list[dict[str, float]] | None:
        policies = self._policies()
        return policies.routes(model) if policies is not None else None

    def stream_ended(self, node_id: str, outcome: str) -> None:
        """A stream the node had accepted ended: its verdict for the node's breaker."""
        if outcome == "ok":
            self.breakers.success(node_id)
        elif outcome in ("upstream_error", "timeout"):
            self.breakers.failure(node_id)
