"""``api-router``: parses the command line and calls the command (``commands/``).

Each command is a function ``(args) -> exit code`` so tests can call :func:`main`. The
admin commands' parsers are in ``cli_admin.py``; the manual is :data:`MANUAL`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Callable, Sequence
from typing import TypeAlias

import shtab

from api_router.cli_admin import add_admin_commands, gateway_options
from api_router.commands import audit_sink, config, dev, request, serve, worker
from api_router.config.loader import ConfigError

Handler = Callable[[argparse.Namespace], int]
# Only in annotations: the class cannot be subscripted at run time.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

DESCRIPTION = """\
NAME
  api-router - the api-router LLM inference gateway: run it, and manage it

DESCRIPTION
  Runs the gateway (serve), the worker beside an inference backend (worker), the
  audit trail's writer into PostgreSQL (audit-sink) or the whole stack on this machine
  (dev), and manages a running gateway through its admin
  HTTP API: API keys (keys), routing overrides (routing), audit records (audit), a
  tenant's spend and limits (usage) and the tenants (tenants)."""

MANUAL = """\
GATEWAY AND KEY
  keys, routing, audit, usage and tenants call a gateway with a key of scope admin. Each
  of the URL and the key is taken from its option (--url, --admin-key), else from the
  environment (API_ROUTER_URL, API_ROUTER_ADMIN_KEY), else from the .run/dev.env that
  `make run` writes (looked for in this directory and its parents). Changes are
  audited under the admin key's id. Only `keys create --direct` writes to Redis itself,
  to create the first admin key: it needs the server's settings (--config, or
  API_ROUTER__REDIS__URL, API_ROUTER__AUTH__PEPPER and API_ROUTER__AUTH__KEK).

OUTPUT
  Aligned tables under a header line, or `name: value` blocks; times are ISO 8601 in
  UTC. --json (before or after the command) prints the gateway's JSON answer as it came,
  on one line, for scripts.

EXIT STATUS
  0  done
  1  the gateway refused or failed the operation (not found, unauthorized, 5xx), or
     could not be reached; the message names the status and the error code
  2  the command line or the configuration is wrong (a 400 from the gateway too)

ENVIRONMENT
  API_ROUTER_URL            the gateway's base URL, e.g. https://gateway.example.com
  API_ROUTER_ADMIN_KEY      an API key with the admin scope
  API_ROUTER_KEY            a tenant's key: what `usage` (without --tenant) and
                            `request` use
  API_ROUTER__SECTION__KEY  any setting of the router YAML file (serve, worker, dev,
                            config check, keys create --direct)

EXAMPLES
  api-router keys create --direct --tenant ops --scope admin   # the first admin key
  api-router --url https://gw.example.com --admin-key ark_... keys list --tenant acme
  api-router routing drain pi-1 --reason "kernel update" --ttl-s 3600
  api-router usage --tenant acme --month 2026-05 --json
  api-router audit list --tenant acme --status upstream_error --limit 20
  api-router completion bash | sudo tee /etc/bash_completion.d/api-router

SEE ALSO
  docs/first-hour.md (a first hour with the gateway), docs/runbooks.md,
  services/api-router-service/docs/api.md; `api-router COMMAND --help` for each command."""


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
    parser = argparse.ArgumentParser(
        prog="api-router",
        description=DESCRIPTION,
        epilog=MANUAL,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    version = importlib.metadata.version("api-router-service")
    parser.add_argument(
        "--version", action="version", version=f"api-router {version}", help="print the version"
    )
    gateway_options(parser, top=True)
    commands = parser.add_subparsers(required=True, metavar="COMMAND", title="commands")
    _serve_parser(commands)
    _worker_parser(commands)
    _dev_parser(commands)
    _audit_sink_parser(commands)
    add_admin_commands(commands)
    _request_parser(commands)
    _config_parser(commands)
    completion = commands.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh or tcsh)",
        description="Print the completion script of SHELL; source it, or install it "
        "where your shell looks (bash: /etc/bash_completion.d/).",
    )
    shtab.add_argument_to(completion, "shell", parent=parser, help="bash, zsh or tcsh")
    return parser


def _serve_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "serve",
        help="run the gateway",
        description="Run the gateway. Settings come from --config and API_ROUTER__* "
        "variables; the pepper and the KEK are required.",
    )
    parser.add_argument("--config", help="router YAML file (API_ROUTER__* variables override it)")
    parser.add_argument("--host", help="address to listen on (server.host)")
    parser.add_argument("--port", type=int, help="port to listen on (server.port)")
    parser.set_defaults(handler=serve.run)


def _audit_sink_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "audit-sink",
        help="store the audit trail from Kafka in PostgreSQL",
        description="Consume the audit topic into PostgreSQL (audit.database_url): one "
        "table partitioned by day, each record once, offsets committed after the rows.",
    )
    parser.add_argument("--config", help="router YAML file (API_ROUTER__* variables override it)")
    parser.add_argument("--metrics-host", default="127.0.0.1", help="metrics address (127.0.0.1)")
    parser.add_argument(
        "--metrics-port", type=int, default=9465, help="port of /metrics (9465; 0: none)"
    )
    parser.set_defaults(handler=audit_sink.run)


def _dev_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "dev",
        help="run the whole local stack (what `make run` does)",
        description=dev.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="router YAML file for the gateway and the workers")
    parser.add_argument("--port", type=int, help="gateway port (env API_ROUTER_PORT, 8080)")
    parser.add_argument("--redis-port", type=int, help="env API_ROUTER_REDIS_PORT, 6380")
    parser.add_argument("--broker-port", type=int, help="env API_ROUTER_BROKER_PORT, 9092")
    parser.add_argument("--postgres-port", type=int, help="env API_ROUTER_POSTGRES_PORT, 5433")
    parser.add_argument("--run-dir", default=".run", help="state, logs and dev.env (.run)")
    parser.add_argument(
        "--mock-tokens-per-second",
        type=float,
        default=dev.MOCK_TOKENS_PER_SECOND,
        help="how fast the mock workers write their answers, word by word "
        f"({dev.MOCK_TOKENS_PER_SECOND:g}; 0: at once)",
    )
    parser.set_defaults(handler=dev.run)


def _worker_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "worker",
        help="run the worker of one inference node",
        description="Run the worker of one inference node: it publishes the node's "
        "health and takes the node's jobs from Redis to its backend.",
    )
    parser.add_argument("--node-id", required=True, help="the node's name, unique in the fleet")
    parser.add_argument("--pool", required=True, help="the pool the node belongs to")
    parser.add_argument(
        "--backend", choices=["ollama", "openai", "mock"], required=True, help="what answers"
    )
    parser.add_argument("--backend-url", help="the backend's base URL (ollama, openai)")
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
    parser.add_argument("--max-concurrency", type=int, default=2, help="jobs at once (2)")
    parser.add_argument("--models", default="mock", help="mock backend: comma-separated models")
    parser.add_argument(
        "--mock-latency-ms", type=float, default=0.0, help="mock: wait before answering (0)"
    )
    parser.add_argument(
        "--mock-tokens-per-second",
        type=float,
        default=0.0,
        help="mock: answer word by word at this rate (0: at once)",
    )
    parser.add_argument(
        "--health-interval-s", type=float, default=5.0, help="health report period (5)"
    )
    parser.add_argument(
        "--reclaim-idle-s",
        type=float,
        default=15.0,
        help="take over jobs a crashed worker of this node left pending this long (15)",
    )
    parser.add_argument(
        "--drain-grace-s", type=float, default=30.0, help="on SIGTERM, finish jobs this long (30)"
    )
    parser.add_argument(
        "--backend-timeout-s", type=float, default=300.0, help="longest backend call (300)"
    )
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


def _request_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "request",
        help="send one (signed) request to the gateway",
        description="Send one request and print the answer (exit 1 on an error status). "
        "It authenticates with API_ROUTER_KEY, or signs (--sign) with API_ROUTER_KEY_ID "
        "and API_ROUTER_SIGNING_SECRET.",
    )
    parser.add_argument("method", help="GET, POST, ...")
    parser.add_argument("path", help="e.g. /v1/inference or /v1/models")
    parser.add_argument("--sign", action="store_true", help="sign it (RFC 9421, hmac-sha256)")
    parser.add_argument("--data", help="the JSON body, or @file to read it from a file")
    parser.add_argument(
        "--url",
        default=argparse.SUPPRESS,  # keeps a --url given before the command
        help="gateway base URL (env API_ROUTER_URL)",
    )
    parser.add_argument("--key-id", help="env API_ROUTER_KEY_ID (with --sign)")
    parser.add_argument("--signing-secret", help="env API_ROUTER_SIGNING_SECRET (with --sign)")
    parser.set_defaults(handler=request.send)


def _config_parser(commands: Commands) -> None:
    actions = commands.add_parser(
        "config", help="check configuration files", description="Check configuration files."
    ).add_subparsers(required=True, metavar="ACTION", title="actions")
    check = actions.add_parser(
        "check",
        help="validate a router YAML file and its policies file (exit 2 if invalid)",
        description="Validate a router YAML file and the policies file it names (or "
        "--policies); exit 2 with the YAML path at fault and why. The secrets may be "
        "absent (serve requires them); when set, they are checked too.",
    )
    check.add_argument("file", nargs="?", help="router YAML file")
    check.add_argument("--policies", help="policies YAML file (default: limits.policies_file)")
    check.set_defaults(handler=config.check)
