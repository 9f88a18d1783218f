"""The `$defs` of the chart's values.schema.json: the router and policies settings schemas.

``config`` and ``policies.content`` in the chart's values are router.yaml and policies.yaml,
so helm checks them against the schemas of the structs the service loads them into
(``msgspec.json.schema_components``), without the secrets, which never go into values.
A test fails when the checked-in file differs; rewrite it with::

    cd services/api-router-service && ../../.venv/bin/python -m tests.support.chart_schema
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from api_router.config.policies import Policies
from api_router.config.settings import Settings

VALUES_SCHEMA = Path(__file__).parents[4] / "deployments/helm/api-router-service/values.schema.json"
# Only ever from a Secret: a schema without them makes helm refuse them in `config`.
SECRET_SETTINGS = {
    "AuthSettings": ("pepper", "kek"),
    "RedisSettings": ("password", "sentinel_password"),
}


def settings_defs() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [Settings, Policies], ref_template="#/$defs/{name}"
    )
    for struct, names in SECRET_SETTINGS.items():
        for name in names:
            del components[struct]["properties"][name]
    return components


def write() -> None:
    schema = json.loads(VALUES_SCHEMA.read_text())
    schema["$defs"] = settings_defs()
    VALUES_SCHEMA.write_text(json.dumps(schema, indent=2) + "\n")


if __name__ == "__main__":
    write()
