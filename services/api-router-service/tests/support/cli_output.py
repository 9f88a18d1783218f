"""Reading what the admin commands print for people back into values: a table by its
header's column positions, a block of ``name: value`` lines by name."""

from __future__ import annotations

import re

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$")


def parse_table(text: str) -> list[dict[str, str]]:
    """The rows of the table that starts ``text`` (up to a blank line), by header; each
    column starts where its header does (headers are separated by two spaces or more)."""
    lines = text.strip("\n").split("\n\n")[0].splitlines()
    header = lines[0]
    starts = [match.start() for match in re.finditer(r"(?:^|(?<=  ))\S", header)]
    names = [header[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return [
        {
            name: line[a:b].strip()
            for name, a, b in zip(names, starts, [*starts[1:], None], strict=True)
        }
        for line in lines[1:]
    ]


def parse_fields(text: str) -> dict[str, str]:
    """``name: value`` lines (the values aligned after the colon) as a dict."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        name, colon, value = line.partition(":  ")  # the longest name has two spaces
        if colon:
            found[name] = value.strip()
    return found
