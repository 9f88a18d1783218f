"""``python -m api_router.contracts``: rewrite the generated contract files."""

from __future__ import annotations

import json
from pathlib import Path

from api_router.contracts.http import HTTP_CONTRACTS, http_contract


def main() -> None:
    folder = Path(__file__).parent
    for name in HTTP_CONTRACTS:
        text = json.dumps(http_contract(name), indent=2, sort_keys=True) + "\n"
        (folder / f"{name}.schema.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
