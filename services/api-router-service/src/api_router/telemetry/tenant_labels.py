"""The value of the ``tenant`` metric label, bounded: tenants are clients' business and
must not mint an unbounded number of metric series."""

from __future__ import annotations

OTHER_TENANTS = "_other"


class TenantLabels:
    """The first ``limit`` tenants this process sees keep their name; later ones share
    ``_other``. Turned off, every tenant is ``""``, which Prometheus stores as no label."""

    def __init__(self, enabled: bool, limit: int) -> None:
        self.enabled = enabled
        self._limit = limit
        self._named: set[str] = set()

    def label(self, tenant: str) -> str:
        if not self.enabled:
            return ""
        if tenant in self._named:
            return tenant
        if len(self._named) < self._limit:
            self._named.add(tenant)
            return tenant
        return OTHER_TENANTS
