"""``api-router``: serve | worker | dev | keys | request | routing | config check.

Each subcommand is a function ``(args) -> exit code`` so tests can call :func:`main`.
Exit code 2 means the configuration or the arguments are invalid.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Callable, Sequence

from api_router.auth.key_record import SCOPES
from api_router.commands import config, dev, keys, request, routing, serve, worker
from api_router.config.loader import ConfigError

Handler = Callable[[argparse.Namespace], int]


def run() -> None:
    sys.exit(main(sys.argv[1:]))


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"api-router: invalid configuration: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="api-router", description=__doc__)
    version = importlib.metadata.version("api-router-service")
    parser.add_argument("--version", action="version", version=f"api-router {version}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve_parser = commands.add_parser("serve", help="run the gateway")
    serve_parser.add_argument("--config", help="router YAML file (env API_ROUTER__* overrides it)")
    serve_parser.add_argument("--host")
    serve_parser.add_argument("--port", type=int)
    serve_parser.set_defaults(handler=serve.run)

    _worker_parser(commands)

    dev_parser = commands.add_parser("dev", help="run the whole local stack")
    dev_parser.add_argument("--config", help="router YAML file for the gateway")
    dev_parser.add_argument("--port", type=int, help="gateway port (env API_ROUTER_PORT, 8080)")
    dev_parser.add_argument("--redis-port", type=int, help="env API_ROUTER_REDIS_PORT, 6380")
    dev_parser.add_argument("--broker-port", type=int, help="env API_ROUTER_BROKER_PORT, 9092")
    dev_parser.add_argument("--run-dir", default=".run", help="state, logs and dev.env (.run)")
    dev_parser.set_defaults(handler=dev.run)

    _keys_parser(commands)
    _request_parser(commands)
    _routing_parser(commands)

    config_parser = commands.add_parser("config", help="configuration").add_subparsers(
        required=True, metavar="ACTION"
    )
    check = config_parser.add_parser(
        "check",
        help="validate a router YAML file and its policies file (exit 2 if invalid); the "
        "secrets may be absent (serve requires them)",
    )
    check.add_argument("file", nargs="?", help="router YAML file")
    check.add_argument("--policies", help="policies YAML file (default: limits.policies_file)")
    check.set_defaults(handler=config.check)
    return parser


def _worker_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("worker", help="run the worker of one inference node")
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--pool", required=True)
    parser.add_argument("--backend", choices=["ollama", "openai", "mock"], required=True)
    parser.add_argument("--backend-url")
    key = parser.add_mutually_exclusive_group()
    key.add_argument(
        "--backend-api-key-env",
        metavar="NAME",
        help="the backend's API key is in this environment variable (sent only to --backend-url)",
    )
    key.add_argument(
        "--backend-api-key-file",
        metavar="PATH",
        help="the backend's API key is in this file, read again when it changes",
    )
    parser.add_argument("--redis-url", help="default: redis.url of --config / environment")
    parser.add_argument("--config", help="router YAML file, for redis and telemetry settings")
    parser.add_argument("--max-concurrency", type=int, default=2)
    parser.add_argument("--models", default="mock", help="mock backend: comma-separated models")
    parser.add_argument("--mock-latency-ms", type=float, default=0.0)
    parser.add_argument("--mock-tokens-per-second", type=float, default=0.0)
    parser.add_argument("--health-interval-s", type=float, default=5.0)
    parser.add_argument("--reclaim-idle-s", type=float, default=15.0)
    parser.add_argument("--drain-grace-s", type=float, default=30.0)
    parser.add_argument("--backend-timeout-s", type=float, default=300.0)
    parser.add_argument(
        "--metrics-port", type=int, help="serve /metrics and /healthz on this port (default: off)"
    )
    parser.add_argument("--metrics-host", default="127.0.0.1", help="their address (127.0.0.1)")
    parser.add_argument(
        "--thermal-zones",
        default="/sys/class/thermal",
        help="where the node's thermal zones are read (a container may mount the host's elsewhere)",
    )
    parser.set_defaults(handler=worker.run)


def _keys_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    actions = commands.add_parser("keys", help="manage API keys").add_subparsers(
        required=True, metavar="ACTION"
    )
    create = actions.add_parser("create", help="create a key and print its secrets once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--scope", action="append", choices=SCOPES)
    create.add_argument("--name", default="")
    create.add_argument(
        "--auth", choices=["signature_or_key", "signature_required"], default="signature_or_key"
    )
    create.add_argument("--expires-in-days", type=float)
    create.set_defaults(handler=keys.create)
    listing = actions.add_parser("list", help="a tenant's keys (never secrets)")
    listing.add_argument("--tenant", required=True)
    listing.set_defaults(handler=keys.list_keys)
    show = actions.add_parser("show", help="one key (never secrets)")
    show.add_argument("key_id")
    show.set_defaults(handler=keys.show)
    revoke = actions.add_parser("revoke", help="revoke a key on every replica within 1 s")
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=keys.revoke)
    rotate = actions.add_parser(
        "rotate", help="add a signing secret (printed once), or --retire an old one"
    )
    rotate.add_argument("key_id")
    rotate.add_argument("--retire", metavar="SECRET_ID", help="delete this signing secret")
    rotate.set_defaults(handler=keys.rotate)
    for parser in (create, listing, show, revoke, rotate):
        parser.add_argument("--config")
        parser.add_argument("--json", action="store_true", help="print JSON")


def _request_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("request", help="send one (signed) request to the gateway")
    parser.add_argument("method")
    parser.add_argument("path", help="e.g. /v1/inference or /v1/models")
    parser.add_argument("--sign", action="store_true", help="sign it (RFC 9421, hmac-sha256)")
    parser.add_argument("--data", help="the JSON body, or @file to read it from a file")
    parser.add_argument("--url", help="gateway base URL (env API_ROUTER_URL)")
    parser.add_argument("--key-id", help="env API_ROUTER_KEY_ID (with --sign)")
    parser.add_argument("--signing-secret", help="env API_ROUTER_SIGNING_SECRET (with --sign)")
    parser.set_defaults(handler=request.send)


def _routing_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    actions = commands.add_parser("routing", help="routing overrides").add_subparsers(
        required=True, metavar="ACTION", dest="action"
    )
    helps = {
        "show": "print the routing in force (JSON)",
        "weights": "set pool weights of a model: MODEL POOL=WEIGHT...",
        "drain": "take no new jobs on a node",
        "undrain": "remove a node's drain",
        "pin": "restrict a model to nodes: MODEL NODE...",
        "unpin": "remove a model's pin",
    }
    for action, help_text in helps.items():
        parser = actions.add_parser(action, help=help_text)
        parser.add_argument("--config", help="router YAML file (redis, policies file)")
        if action in ("weights", "pin", "unpin"):
            parser.add_argument("model")
        if action in ("drain", "undrain"):
            parser.add_argument("node")
        if action == "weights":
            parser.add_argument("weights", nargs="+", metavar="POOL=WEIGHT")
        if action == "pin":
            parser.add_argument("nodes", nargs="+", metavar="NODE")
        if action in ("weights", "drain", "pin"):
            parser.add_argument("--reason", required=True)
            parser.add_argument("--ttl-s", type=float, help="expire by itself after this long")
        parser.set_defaults(handler=routing.run)
