"""Loads settings once: YAML file, then ``API_ROUTER__SECTION__KEY`` environment overrides.

Errors name the offending YAML path (``dispatch.accept_timeout_s``) and the reason, so
``api-router config check`` and ``serve`` can refuse a bad file with exit code 2.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml

from api_router.config.settings import Settings

ENV_PREFIX = "API_ROUTER__"
_PATH_IN_MESSAGE = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`")
# Settings that moved: a file that still uses the old name is told the new one.
_RENAMED = {"stream.idle_timeout_s": "dispatch.idle_timeout_s"}


class ConfigError(Exception):
    """The configuration is invalid; ``path`` is the dotted YAML path at fault."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path or '<root>'}: {reason}")
        self.path = path
        self.reason = reason


def load_settings(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` (optional), apply environment overrides, validate into ``Settings``."""
    tree = read_yaml(Path(path)) if path is not None else {}
    _apply_env_overrides(tree, os.environ if environ is None else environ)
    try:
        return msgspec.convert(tree, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise config_error(str(exc)) from None


def require_pepper(settings: Settings) -> str:
    """The key-hashing pepper, or a clear error saying how to provide it."""
    if settings.auth.pepper is None:
        raise ConfigError(
            "auth.pepper",
            "missing; set API_ROUTER__AUTH__PEPPER to a random string of at least 32 characters",
        )
    return settings.auth.pepper


def require_kek(settings: Settings) -> bytes:
    """The 32-byte key-encryption key of the signing secrets, or a clear error."""
    how = "set API_ROUTER__AUTH__KEK to 32 random bytes in base64 (openssl rand -base64 32)"
    if settings.auth.kek is None:
        raise ConfigError("auth.kek", f"missing; {how}")
    try:
        kek = base64.b64decode(settings.auth.kek, validate=True)
    except binascii.Error:
        raise ConfigError("auth.kek", f"not valid base64; {how}") from None
    if len(kek) != 32:
        raise ConfigError("auth.kek", f"decodes to {len(kek)} bytes, not 32; {how}")
    return kek


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read {path}: {exc.strerror}") from None
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError("", f"not valid YAML{where}") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError("", "the top level must be a mapping of sections")
    return tree


def _apply_env_overrides(tree: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if len(parts) != 2 or not all(parts):
            raise ConfigError(name, "environment overrides look like API_ROUTER__SECTION__KEY")
        section = tree.setdefault(parts[0], {})
        if not isinstance(section, dict):
            raise ConfigError(parts[0], "must be a mapping")
        # Kept as strings: validation in lax mode turns "8080" into 8080 where an int is due.
        section[parts[1]] = _list_or_text(raw)


def _list_or_text(raw: str) -> Any:
    """A list setting (``direct.nodes``) comes as a JSON list; anything else stays text."""
    if raw.startswith("["):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            pass  # not JSON ("[::1]"): the text it is
    return raw


def config_error(message: str) -> ConfigError:
    path = ""
    reason = message
    found = _PATH_IN_MESSAGE.search(message)
    if found:
        path = found.group("path")
        reason = message[: found.start()]
    unknown = _UNKNOWN_FIELD.match(reason)
    if unknown:
        path = f"{path}.{unknown.group('field')}" if path else unknown.group("field")
        renamed = _RENAMED.get(path)
        reason = f"unknown setting; it is now {renamed}" if renamed else "unknown setting"
    return ConfigError(path, reason[:1].lower() + reason[1:])
