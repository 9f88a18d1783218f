"""``api-router config check``: validate a router YAML file and its policies file."""

from __future__ import annotations

import argparse
import sys

from api_router.config.loader import ConfigError, load_settings, require_kek, require_pepper


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
        require_pepper(settings)
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
