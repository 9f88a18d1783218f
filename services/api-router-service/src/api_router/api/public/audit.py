"""``GET /v1/audit/requests/{id}`` (own tenant, or any for admins) and the admins' listing.

Another tenant's record is answered exactly like an unknown id, so ids cannot be probed;
ids and query parameters are validated before Redis is asked anything.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import get_args

import msgspec
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from api_router.api.json_response import json_response
from api_router.api.request_context import REQUEST_ID_PATTERN, context_of
from api_router.auth.key_record import TENANT_PATTERN
from api_router.errors import ApiError
from api_router.services import services_of
from api_router.usage.audit_store import AuditQuery
from api_router.usage.record import AuditRecord, Status

_STATUSES: dict[str, Status] = {status: status for status in get_args(Status)}
MAX_LIMIT = 500
_DEFAULT_LIMIT = 50


class AuditList(msgspec.Struct, frozen=True):
    data: list[AuditRecord]
    # Pass as ``cursor`` to get the next (older) page; null when there is none.
    next_cursor: str | None


async def audit_request(request: Request) -> Response:
    request_id = request.path_params["request_id"]
    if not re.fullmatch(REQUEST_ID_PATTERN, request_id):
        raise ApiError("invalid_request", "request ids look like 'req_' and 32 hex digits")
    principal = context_of(request.scope).authenticated()
    record = await services_of(request.scope).audit.get(request_id)
    if record is None or ("admin" not in principal.scopes and record.tenant != principal.tenant):
        raise ApiError("not_found", f"no audit record for {request_id}")
    return json_response(record)


async def audit_requests(request: Request) -> Response:
    query = _query(request.query_params)
    page = await services_of(request.scope).audit.query(query)
    cursor = None if page.next_offset is None else f"{query.until_ms}.{page.next_offset}"
    return json_response(AuditList(page.records, cursor))


def _query(params: QueryParams) -> AuditQuery:
    get = params.get
    tenant = get("tenant")
    if tenant is not None and not re.fullmatch(TENANT_PATTERN, tenant):
        raise ApiError("invalid_request", "tenant: 1 to 64 letters, digits and . _ - only")
    status_text = get("status")
    status = None if status_text is None else _STATUSES.get(status_text)
    if status_text is not None and status is None:
        raise ApiError("invalid_request", f"status must be one of {', '.join(_STATUSES)}")
    limit = _integer(get("limit"), "limit", _DEFAULT_LIMIT)
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError("invalid_request", f"limit must be between 1 and {MAX_LIMIT}")
    until_ms = _timestamp_ms(get("until"), "until", int(time.time() * 1000))
    offset = 0
    cursor = get("cursor")
    if cursor is not None:
        until_text, _, offset_text = cursor.partition(".")
        until_ms = _integer(until_text, "cursor", 0)
        offset = _integer(offset_text, "cursor", 0)
    return AuditQuery(
        tenant=tenant,
        since_ms=_timestamp_ms(get("since"), "since", 0),
        until_ms=until_ms,
        status=status,
        limit=limit,
        offset=offset,
    )


def _integer(text: str | None, name: str, default: int) -> int:
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 15:
        raise ApiError("invalid_request", f"{name} is not valid")
    return int(text)


# RFC 3339 date-time (the OpenAPI document says `format: date-time`): lowercase t and z,
# any number of fraction digits and a leap second (counted as that minute's last second)
# included; an offset is required.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def _timestamp_ms(text: str | None, name: str, default: int) -> int:
    if text is None:
        return default
    found = _RFC3339.fullmatch(text)
    try:
        if found is None:
            raise ValueError(text)
        year, month, day, hour, minute, second = (int(part) for part in found.groups()[:6])
        offset_hours, offset_minutes = int(found[9] or 0), int(found[10] or 0)
        if offset_minutes > 59:
            raise ValueError(text)
        offset = dt.timedelta(hours=offset_hours, minutes=offset_minutes)
        zone = dt.timezone(-offset if found[8] == "-" else offset)
        moment = dt.datetime(year, month, day, hour, minute, min(second, 59), tzinfo=zone)
    except ValueError:
        raise ApiError(
            "invalid_request", f"{name} must be an RFC 3339 time, e.g. 2026-11-22T13:00:00Z"
        ) from None
    return int((moment.timestamp() + float(found[7] or 0)) * 1000)
