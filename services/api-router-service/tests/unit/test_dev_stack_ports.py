"""`api-router dev` ports: flags win over environment variables, which win over defaults."""

from __future__ import annotations

from api_router.commands.dev import StackPorts


def test_defaults() -> None:
    assert StackPorts.resolve(None, None, None, {}) == StackPorts(8080, 6380, 9092)


def test_environment_variables_move_every_port() -> None:
    env = {
        "API_ROUTER_PORT": "9000",
        "API_ROUTER_REDIS_PORT": "6390",
        "API_ROUTER_BROKER_PORT": "9093",
    }
    assert StackPorts.resolve(None, None, None, env) == StackPorts(9000, 6390, 9093)


def test_flags_win_over_the_environment() -> None:
    env = {"API_ROUTER_PORT": "9000", "API_ROUTER_REDIS_PORT": "6390"}
    assert StackPorts.resolve(9100, None, 9094, env) == StackPorts(9100, 6390, 9094)
