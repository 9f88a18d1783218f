"""Checks that a deployment artifact asks the CLI and the loader only for what they have."""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Mapping, Sequence

import msgspec

from api_router.cli import _parser
from api_router.config.loader import ENV_PREFIX
from api_router.config.settings import Settings
from tests.support.containers import Container


def parse_command(args: Sequence[str]) -> argparse.Namespace:
    """``args`` parsed by the real ``api-router`` parser (SystemExit when it refuses them)."""
    return _parser().parse_args(list(args))


def command_name(args: Sequence[str]) -> str:
    """The subcommand ``args`` run, after checking the parser accepts them whole."""
    namespace = parse_command(args)
    handler = namespace.handler
    assert callable(handler)
    return args[0]


def setting_of(env_name: str) -> tuple[str, str]:
    """The ``(section, key)`` an ``API_ROUTER__SECTION__KEY`` variable overrides; fails for a
    variable the loader would not read or would refuse."""
    assert env_name.startswith(ENV_PREFIX), f"{env_name}: not an {ENV_PREFIX}* override"
    parts = env_name[len(ENV_PREFIX) :].lower().split("__")
    assert len(parts) == 2, f"{env_name}: not API_ROUTER__SECTION__KEY"
    section, key = parts
    sections = {f.name: f.type for f in msgspec.structs.fields(Settings)}
    assert section in sections, f"{env_name}: no settings section {section!r}"
    keys = {f.name for f in msgspec.structs.fields(sections[section])}
    assert key in keys, f"{env_name}: no setting {section}.{key}"
    return section, key


def assert_env_is_read(env: Mapping[str, str]) -> None:
    for name in env:
        setting_of(name)


def config_check(container: Container, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """``api-router config check ...`` run in ``container`` (its env, volumes, workdir)."""
    return container.run(["config", "check", *args])


def config_file_of(args: Sequence[str]) -> str:
    """The ``--config`` file of a serve or worker command line."""
    namespace = parse_command(args)
    config: str = namespace.config
    return config
