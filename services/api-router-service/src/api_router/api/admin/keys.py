"""The admin key API (scope ``admin``): create, list, show and revoke keys, add and delete
signing secrets. Every call that changes something is recorded in the audit store."""

from __future__ import annotations

import re

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api_router.api.admin.audit_trail import record_action
from api_router.api.admin.key_contract import (
    CreateKeyRequest,
    KeyList,
    NewSigningSecret,
    created_key,
    key_info,
)
from api_router.api.body import decode_body, read_json_body
from api_router.api.json_response import json_response
from api_router.auth.api_keys import is_key_id, is_signing_secret_id
from api_router.auth.key_record import TENANT_PATTERN, KeyRecord
from api_router.errors import ApiError
from api_router.services import Services, services_of

_decode_create = msgspec.json.Decoder(CreateKeyRequest)


async def create_key(request: Request) -> Response:
    services = services_of(request.scope)
    body = await read_json_body(request, services.settings.server)
    wanted = decode_body(body, _decode_create)
    issued = await services.key_store.create(
        wanted.tenant, wanted.scopes, wanted.name, wanted.expires_at, wanted.auth
    )
    record = issued.record
    record_action(
        request,
        "keys.create",
        record.id,
        {
            "tenant": record.tenant,
            "scopes": list(record.scopes),
            "auth": record.auth,
            "signing_secret": issued.signing_secrets[0].id,
        },
    )
    return json_response(created_key(issued), 201)


async def list_keys(request: Request) -> Response:
    tenant = request.query_params.get("tenant")
    if tenant is None or not re.fullmatch(TENANT_PATTERN, tenant):
        raise ApiError("invalid_request", "tenant: required; letters, digits and . _ - only")
    store = services_of(request.scope).key_store
    records = await store.of_tenant(tenant)
    used = await store.last_used([r.id for r in records])
    return json_response(KeyList([key_info(r, used.get(r.id)) for r in records]))


async def show_key(request: Request) -> Response:
    services = services_of(request.scope)
    key_id = _key_id(request)
    record = await services.key_store.read(key_id)
    if record is None:
        raise ApiError("not_found", f"no key {key_id}")
    return await _key_response(services, record)


async def revoke_key(request: Request) -> Response:
    services = services_of(request.scope)
    key_id = _key_id(request)
    record = await services.key_store.revoke(key_id)
    record_action(request, "keys.revoke", key_id, {"tenant": record.tenant})
    return await _key_response(services, record)


async def add_signing_secret(request: Request) -> Response:
    services = services_of(request.scope)
    key_id = _key_id(request)
    record, shown = await services.key_store.add_signing_secret(key_id)
    record_action(
        request,
        "keys.signing_secret.add",
        key_id,
        {"tenant": record.tenant, "signing_secret": shown.id},
    )
    return json_response(NewSigningSecret(shown.id, shown.secret, shown.created_at), 201)


async def delete_signing_secret(request: Request) -> Response:
    services = services_of(request.scope)
    key_id = _key_id(request)
    secret_id = request.path_params["secret_id"]
    if not is_signing_secret_id(secret_id):
        raise ApiError("invalid_request", "signing secret ids look like 's' and 8 characters")
    record = await services.key_store.remove_signing_secret(key_id, secret_id)
    record_action(
        request,
        "keys.signing_secret.delete",
        key_id,
        {"tenant": record.tenant, "signing_secret": secret_id},
    )
    return await _key_response(services, record)


def _key_id(request: Request) -> str:
    key_id: str = request.path_params["key_id"]
    if not is_key_id(key_id):
        raise ApiError("invalid_request", "key ids look like 'k' and 12 characters")
    return key_id


async def _key_response(services: Services, record: KeyRecord) -> Response:
    used = await services.key_store.last_used([record.id])
    return json_response(key_info(record, used.get(record.id)))
