"""The ``Prefer`` request header (RFC 7240): the preferences this gateway honours.

``wait=N`` (seconds a client is willing to wait, §4.3) and ``respond-async`` (§4.1).
Preference names are case-insensitive; unknown preferences, parameters and malformed
values are ignored, as the RFC asks of a server.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import Headers


@dataclass(frozen=True, slots=True)
class Preferences:
    wait_s: float | None = None
    respond_async: bool = False


def preferences(headers: Headers) -> Preferences:
    """What every ``Prefer`` field of the request asks (the first ``wait`` counts)."""
    wait_s: float | None = None
    respond_async = False
    for field in headers.getlist("prefer"):
        for preference in field.split(","):
            name, _, value = preference.partition(";")[0].partition("=")
            name = name.strip().lower()
            if name == "respond-async":
                respond_async = True
            elif name == "wait" and wait_s is None:
                seconds = value.strip().strip('"')
                if seconds.isdigit():
                    wait_s = float(seconds)
    return Preferences(wait_s, respond_async)
