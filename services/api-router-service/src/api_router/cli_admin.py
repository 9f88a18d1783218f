"""The parsers of the admin commands: keys, routing, audit, usage, tenants. Each calls a
running gateway's API (``commands/admin_api.py``); ``--url``, ``--admin-key`` and
``--json`` may come before the command or after it."""

from __future__ import annotations

import argparse
from typing import TypeAlias, get_args

from api_router.auth.key_record import SCOPES
from api_router.commands import audit, keys, routing, usage
from api_router.usage.record import Status

# Only in annotations: the class cannot be subscripted at run time.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
_RFC3339 = "an RFC 3339 time, e.g. 2026-05-01T00:00:00Z"


def gateway_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``--url``, ``--admin-key`` and ``--json``. After the command they only override what
    was given before it (their default there is to leave the value alone)."""
    unset = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("gateway options")
    group.add_argument(
        "--url", default=unset, help="the gateway's base URL (env API_ROUTER_URL, .run/dev.env)"
    )
    group.add_argument(
        "--admin-key",
        default=unset,
        metavar="KEY",
        help="an API key with the admin scope (env API_ROUTER_ADMIN_KEY, .run/dev.env)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print the gateway's JSON answer (one line) instead of a table",
    )


def add_admin_commands(commands: Commands) -> None:
    _keys(commands)
    _routing(commands)
    _audit(commands)
    _usage(commands)


def _action(
    actions: Commands, name: str, help_text: str, description: str | None = None
) -> argparse.ArgumentParser:
    parser = actions.add_parser(name, help=help_text, description=description or help_text)
    gateway_options(parser)
    return parser


def _keys(commands: Commands) -> None:
    actions = commands.add_parser(
        "keys",
        help="create, list, show, revoke and rotate API keys",
        description="API keys through the gateway's admin API (/v1/admin/keys). Secrets "
        "are shown once, when created; `keys create --direct` bootstraps the first admin "
        "key straight into Redis.",
    ).add_subparsers(required=True, metavar="ACTION", title="actions")
    create = _action(actions, "create", "create a key and print its secrets once")
    create.add_argument("--tenant", required=True, help="the tenant the key acts for")
    create.add_argument(
        "--scope",
        action="append",
        choices=SCOPES,
        help="what the key may do; repeat for several (default: inference)",
    )
    create.add_argument("--name", default="", help="a label for people, e.g. 'billing job'")
    create.add_argument(
        "--auth",
        choices=["signature_or_key", "signature_required"],
        default="signature_or_key",
        help="signature_required: the API key alone is refused, requests must be signed",
    )
    create.add_argument("--expires-in-days", type=float, help="expire after this many days")
    create.add_argument(
        "--direct",
        action="store_true",
        help="write to Redis directly, without a gateway (the first admin key); needs the "
        "server's settings: --config or API_ROUTER__REDIS__URL, __AUTH__PEPPER, __AUTH__KEK",
    )
    create.add_argument("--config", help="with --direct: the router YAML file")
    create.set_defaults(handler=keys.create)
    listing = _action(actions, "list", "a tenant's keys (never secrets)")
    listing.add_argument("--tenant", required=True, help="whose keys")
    listing.set_defaults(handler=keys.list_keys)
    show = _action(actions, "show", "one key (never secrets)")
    show.add_argument("key_id", help="the key id, e.g. k3f9a0b1c2d3e")
    show.set_defaults(handler=keys.show)
    revoke = _action(actions, "revoke", "revoke a key on every replica within a second")
    revoke.add_argument("key_id", help="the key id")
    revoke.set_defaults(handler=keys.revoke)
    rotate = _action(
        actions,
        "rotate",
        "add a signing secret (printed once), or --retire an old one",
        "Add a signing secret to a key (printed once); once every signer uses it, "
        "retire the old one with --retire.",
    )
    rotate.add_argument("key_id", help="the key id")
    rotate.add_argument("--retire", metavar="SECRET_ID", help="delete this signing secret")
    rotate.set_defaults(handler=keys.rotate)


def _routing(commands: Commands) -> None:
    actions = commands.add_parser(
        "routing",
        help="the routing in force, drains, pins and weights",
        description="The routing in force and the admins' overrides, through the "
        "gateway's admin API (/v1/admin/routing). Every override names a reason and may "
        "expire (--ttl-s); it reaches every replica within a second.",
    ).add_subparsers(required=True, metavar="ACTION", dest="action", title="actions")
    helps = {
        "show": "nodes (state, breaker, load), models (tiers, pins) and the overrides",
        "weights": "set the pool weights of a model: MODEL POOL=WEIGHT...",
        "pin": "restrict a model to some nodes: MODEL NODE...",
        "unpin": "remove a model's pin",
        "drain": "take no new jobs on a node (jobs in flight finish)",
        "undrain": "remove a node's drain",
        "remove": "remove one override by its id (as `routing show` lists them)",
    }
    for action, help_text in helps.items():
        parser = _action(actions, action, help_text)
        if action in ("weights", "pin", "unpin"):
            parser.add_argument("model", help="the model, e.g. llama3.2")
        if action in ("drain", "undrain"):
            parser.add_argument("node", help="the node id")
        if action == "weights":
            parser.add_argument(
                "weights", nargs="+", metavar="POOL=WEIGHT", help="e.g. gpu=3 edge=1"
            )
        if action == "pin":
            parser.add_argument("nodes", nargs="+", metavar="NODE", help="the nodes allowed")
        if action == "remove":
            parser.add_argument("override_id", help="the override's id")
        if action in ("weights", "pin", "drain"):
            parser.add_argument("--reason", required=True, help="why, for the audit trail")
            parser.add_argument(
                "--ttl-s", type=float, help="expire by itself after this many seconds"
            )
        parser.set_defaults(handler=routing.run)


def _audit(commands: Commands) -> None:
    actions = commands.add_parser(
        "audit",
        help="requests' audit records",
        description="Requests' audit records through the gateway's audit API "
        "(/v1/audit/requests): who called, what limits decided, which nodes were tried, "
        "tokens, cost and timings.",
    ).add_subparsers(required=True, metavar="ACTION", title="actions")
    show = _action(actions, "show", "one request's record, by its X-Request-Id")
    show.add_argument("request_id", help="e.g. req_4f0c... (the X-Request-Id of the answer)")
    show.set_defaults(handler=audit.show)
    listing = _action(actions, "list", "records, newest first")
    listing.add_argument("--tenant", help="only this tenant's")
    listing.add_argument("--since", help=f"from this time on: {_RFC3339}")
    listing.add_argument("--until", help=f"up to this time (default now): {_RFC3339}")
    listing.add_argument("--status", choices=get_args(Status), help="only with this outcome")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (50, max 500)")
    listing.add_argument("--cursor", help="the next page, as the previous one names it")
    listing.set_defaults(handler=audit.list_records)


def _usage(commands: Commands) -> None:
    month_help = "a calendar month, YYYY-MM (UTC; default this one)"
    own = commands.add_parser(
        "usage",
        help="a tenant's month: requests, tokens, cost, budget left, limits",
        description="A tenant's calendar month (UTC) as the gateway counts it for its "
        "budget: requests, prompt and completion tokens, cost, the budget and what is "
        "left, the plan's limits, and each model's share. With --tenant, any tenant "
        "(admin key); without it, the calling key's own tenant (--key, API_ROUTER_KEY, "
        "else the admin key).",
    )
    gateway_options(own)
    own.add_argument("--tenant", help="the tenant (needs the admin key)")
    own.add_argument("--month", help=month_help)
    own.add_argument("--key", help="the key whose tenant to show (env API_ROUTER_KEY)")
    own.set_defaults(handler=usage.usage)
    actions = commands.add_parser(
        "tenants",
        help="every tenant's month at a glance, or one tenant's",
        description="The tenants (those of the policies file and those that have had a "
        "key) with their plan, keys and month to date.",
    ).add_subparsers(required=True, metavar="ACTION", title="actions")
    listing = _action(actions, "list", "every tenant: plan, keys, requests, tokens, cost, budget")
    listing.add_argument("--month", help=month_help)
    listing.set_defaults(handler=usage.list_tenants)
    show = _action(actions, "show", "one tenant's month in full (as `usage --tenant`)")
    show.add_argument("tenant", help="the tenant")
    show.add_argument("--month", help=month_help)
    show.set_defaults(handler=usage.show_tenant)
