"""Every change made from the command line goes to the audit store, as ``cli:<user>``
(the admin API records the calling key instead: ``api/admin/audit_trail.py``)."""

from __future__ import annotations

import getpass
from typing import Any

from api_router.usage.audit_store import AuditStore
from api_router.usage.record import AdminAction, now_rfc3339


def cli_actor() -> str:
    return f"cli:{getpass.getuser()}"


def record_cli_action(audit: AuditStore, action: str, target: str, details: dict[str, Any]) -> None:
    """Queue the action (``details`` must hold no secret)."""
    audit.write(
        AdminAction(
            at=now_rfc3339(), actor=cli_actor(), action=action, target=target, details=details
        )
    )
