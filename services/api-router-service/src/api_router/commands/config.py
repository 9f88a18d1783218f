"""``api-router config check``: validate a router YAML file and its policies file.

The pepper and KEK may be absent (``serve`` requires them); when they are set they are
checked too."""

from __future__ import annotations

import argparse
import sys

from api_router.config.loader import ConfigError, load_settings, require_kek


def check(args: argparse.Namespace) -> int:
    from api_router.config.policies import load_policies

    if args.file is None and args.policies is None:
        print(
            "api-router config check: name a router file, --policies FILE, or both", file=sys.stderr
        )
        return 2
    policies_file = args.policies
    if args.file is not None:
        settings = load_settings(args.file)
        # The secrets are required at `serve`, not here: a file is checked in CI or on a
        # worker that never holds them. A KEK that is present must still be a valid one.
        if settings.auth.kek is not None:
            require_kek(settings)
        policies_file = policies_file or settings.limits.policies_file
        print(f"{args.file}: valid")
    if policies_file is not None:
        try:
            load_policies(policies_file)
        except ConfigError as exc:
            print(f"api-router: invalid policies in {policies_file}: {exc}", file=sys.stderr)
            return 2
        print(f"{policies_file}: valid")
    return 0
