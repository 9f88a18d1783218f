"""How the admin commands reach a running gateway: its URL and a key (flags, environment,
or the ``.run/dev.env`` that ``make run`` writes), one HTTP call per step of the admin API,
what they print, and their exit codes (0 done; 1 the gateway refused, failed or could not
be reached; 2 the command line or configuration is wrong, a 400 from the gateway too)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from api_router.client.client import GatewayError
from api_router.commands.dev_keys import read_env_file

DEV_ENV = Path(".run") / "dev.env"
ADMIN_KEY = "API_ROUTER_ADMIN_KEY"
TENANT_KEY = "API_ROUTER_KEY"
_TIMEOUT_S = 30.0


class CommandError(Exception):
    """The command cannot run as given (exit 2); the message says what to fix."""


class GatewayUnreachable(Exception):
    """No answer from the gateway (exit 1)."""


@dataclass(frozen=True, slots=True)
class GatewayTarget:
    url: str
    key: str


def find_target(
    url: str | None,
    key: str | None,
    key_names: Sequence[str],
    environ: Mapping[str, str],
    cwd: Path,
) -> GatewayTarget:
    """Each of the URL and the key from its flag, else the environment, else the nearest
    ``.run/dev.env`` (this directory or a parent); the key under the first of
    ``key_names`` that is set."""
    dev = _nearest_dev_env(cwd)
    url = url or environ.get("API_ROUTER_URL") or dev.get("API_ROUTER_URL")
    key = key or next(
        (place[n] for place in (environ, dev) for n in key_names if place.get(n)), None
    )
    if not url or not key:
        missing = " and ".join(
            what
            for what, found in (("--url (API_ROUTER_URL)", url), (f"a key ({key_names[0]})", key))
            if not found
        )
        raise CommandError(
            f"no gateway to talk to: give {missing}, or run from the repository where "
            "`make run` wrote .run/dev.env"
        )
    return GatewayTarget(url.rstrip("/"), key)


def _nearest_dev_env(cwd: Path) -> dict[str, str]:
    for folder in (cwd, *cwd.parents):
        if (folder / DEV_ENV).is_file():
            return read_env_file(folder / DEV_ENV)
    return {}


class AdminApi:
    """A gateway's API as one key sees it; every call returns the decoded JSON answer or
    raises ``GatewayError`` (the catalog error it answered) or ``GatewayUnreachable``."""

    def __init__(self, target: GatewayTarget, transport: httpx.BaseTransport | None = None):
        self.url = target.url
        self._http = httpx.Client(
            base_url=target.url,
            headers={"Authorization": f"Bearer {target.key}"},
            timeout=_TIMEOUT_S,
            transport=transport,
        )

    def get(self, path: str, **params: str | int | None) -> Any:
        query = {name: value for name, value in params.items() if value is not None}
        return self.call("GET", path, params=query)

    def call(self, method: str, path: str, **options: Any) -> Any:
        try:
            response = self._http.request(method, path, **options)
        except httpx.HTTPError as exc:
            raise GatewayUnreachable(f"cannot reach the gateway at {self.url}: {exc}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.is_error:
            error = answer.get("error", {}) if isinstance(answer, dict) else {}
            raise GatewayError(
                response.status_code,
                error.get("code", "unknown"),
                error.get("message", response.text[:200] or response.reason_phrase),
            )
        return answer

    def close(self) -> None:
        self._http.close()


Action = Callable[[AdminApi], Any]
Render = Callable[[Any], str]


def run_admin(
    args: argparse.Namespace,
    action: Action,
    render: Render,
    *,
    key: str | None = None,
    key_names: Sequence[str] = (ADMIN_KEY,),
) -> int:
    """Call the gateway with ``action`` and print its answer: ``render``ed for people, or
    the JSON as it came with ``--json``. The key is ``key``, else ``--admin-key``, else
    looked for under ``key_names``."""
    try:
        given = key or args.admin_key
        target = find_target(args.url, given, key_names, os.environ, Path.cwd())
        api = AdminApi(target)
        try:
            answer = action(api)
        finally:
            api.close()
    except CommandError as exc:
        print(f"api-router: {exc}", file=sys.stderr)
        return 2
    except GatewayUnreachable as exc:
        print(f"api-router: {exc}", file=sys.stderr)
        return 1
    except GatewayError as exc:
        print(f"api-router: {exc.status} {exc.code}: {exc.message}", file=sys.stderr)
        return 2 if exc.status == 400 else 1
    print(json.dumps(answer) if args.json else render(answer))
    return 0
