"""The code of another commit, run beside today's: ``--baseline <git-ref>``.

The commit's ``src`` is extracted (``git archive``) into a temporary directory and every
process of the baseline's stack (gateway, worker, the CLI that creates its keys) runs with
``PYTHONPATH`` at it: ``python -m api_router`` then imports the baseline, ahead of the
editable install of today's code (checked at start, not assumed). The harness itself, the
fake upstream and the load generators stay today's.

Settings: a test stack writes every ``Settings`` field as an ``API_ROUTER__SECTION__KEY``
variable, and a gateway refuses one it does not know (``forbid_unknown_fields``), so the
baseline's processes get only the variables of the fields its own ``Settings`` has.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.stack import Stack

_SRC = "services/api-router-service/src"

# Run by the baseline's interpreter: where api_router comes from, and its settings' fields.
_INSPECT = """
import json, msgspec, api_router
from api_router.config.settings import Settings
fields = {
    f.name: [g.name for g in msgspec.structs.fields(f.type)]
    for f in msgspec.structs.fields(Settings)
}
print(json.dumps({"file": api_router.__file__, "settings": fields}))
"""


def commit_of(ref: str) -> str:
    """The short hash ``ref`` names (the tables say which code they measured)."""
    return _git("rev-parse", "--short", f"{ref}^{{commit}}").strip()


@contextmanager
def extracted_src(ref: str) -> Iterator[Path]:
    """``ref``'s ``src`` directory in a temporary directory, removed on exit."""
    with tempfile.TemporaryDirectory(prefix="api-router-baseline-") as tmp:
        root = _git("rev-parse", "--show-toplevel").strip()
        archive = subprocess.run(
            ["git", "-C", root, "archive", ref, _SRC], check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        yield Path(tmp, _SRC)


def known_settings(src: Path) -> dict[str, set[str]]:
    """Section → field names of the ``Settings`` in ``src``, as its own interpreter sees
    them; refuses to go on if that interpreter would not import ``src``'s package."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-c", _INSPECT], env=env, check=True, capture_output=True, text=True
    )
    found = json.loads(done.stdout)
    if not Path(found["file"]).is_relative_to(src):
        raise SystemExit(f"the baseline's processes would import {found['file']}, not {src}")
    return {section: set(names) for section, names in found["settings"].items()}


class BaselineStack(Stack):
    """A ``Stack`` whose processes run the code in ``src``, with only the settings it knows."""

    def __init__(self, src: Path, known: dict[str, set[str]], *args: Any) -> None:
        """``known``: ``known_settings(src)``."""
        super().__init__(*args)
        self.src = src
        self.known = known

    def env(self, **sections: dict[str, Any]) -> dict[str, str]:
        env = {
            name: value
            for name, value in super().env(**sections).items()
            if not name.startswith("API_ROUTER__") or self._knows(name)
        }
        env["PYTHONPATH"] = str(self.src)
        return env

    def _knows(self, name: str) -> bool:
        section, _, key = name.removeprefix("API_ROUTER__").lower().partition("__")
        return key in self.known.get(section, set())


def _git(*argv: str) -> str:
    return subprocess.run(["git", *argv], check=True, capture_output=True, text=True).stdout
