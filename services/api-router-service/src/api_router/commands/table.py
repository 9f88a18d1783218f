"""How the admin commands print for people: aligned tables under a header line, blocks of
``name: value`` lines, ISO 8601 times in UTC, and ``-`` for what is not there."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

Cell = str | int | float | None


def table(headers: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    lines = [list(headers), *([text(cell) for cell in row] for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def fields(pairs: Iterable[tuple[str, Cell]]) -> str:
    """One ``name:`` per line, the values aligned."""
    items = [(name + ":", text(value)) for name, value in pairs]
    width = max((len(name) for name, _ in items), default=0) + 2
    return "\n".join(f"{name.ljust(width)}{value}" for name, value in items)


def text(value: Cell) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".")
    return str(value)


def when(epoch_s: float | None, absent: str = "-") -> str:
    """An epoch time as ISO 8601 in UTC, to the second (``absent`` when there is none)."""
    if epoch_s is None:
        return absent
    moment = dt.datetime.fromtimestamp(epoch_s, dt.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
