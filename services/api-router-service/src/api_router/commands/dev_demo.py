"""What ``api-router dev`` shows a newcomer: the demo policies (a plan with a visible
request rate, a token rate and a monthly budget with prices) and the lines it prints, each
a command to paste that shows one feature: an answer, the ``RateLimit`` fields, a 429
after a short burst, a stream arriving word by word, the month's spend, the admin CLI."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

DEMO_TENANT = "demo"
DEMO_PLAN = (
    "\n            (tenant demo: 1 request/s, burst 5, 20000 tokens/min, 5.00 a month;"
    "\n            edit it and the gateway reloads it)"
)
BURST = 8  # requests at once in the burst line: more than the demo plan's bucket of 5


def install_demo_policies(run_dir: Path) -> Path:
    """``<run dir>/policies.yaml``, written from the demo file unless it is there already
    (a user's edits survive a restart)."""
    path = run_dir / "policies.yaml"
    if not path.exists():
        demo = resources.files(__package__).joinpath("demo_policies.yaml")
        path.write_text(demo.read_text(encoding="utf-8"), encoding="utf-8")
    return path


@dataclass(frozen=True, slots=True)
class DemoLines:
    url: str
    key: str
    model: str
    cli: str  # the api-router of this installation, by full path
    dev_env: Path

    def answer(self) -> str:
        return self._curl("-s", self._body())

    def rate_limit_fields(self) -> str:
        return self._curl("-s -o /dev/null -D -", self._body()) + " | grep -i '^ratelimit'"

    def burst(self) -> str:
        curl = self._curl("-s -o /dev/null -w '%{http_code}\\n'", self._body())
        return f"seq {BURST} | xargs -P {BURST} -I{{}} {curl} | sort | uniq -c"

    def stream(self) -> str:
        return self._curl("-sN", self._body(stream=True))

    def usage(self) -> str:
        return f"curl -s {self.url}/v1/usage -H 'Authorization: Bearer {self.key}'"

    def text(self, demo_policies: bool) -> str:
        """The lines to print once the stack is up (the limits' lines only where the demo
        policies are in force)."""
        cli = self.cli
        limits = (
            f"The demo key's rate limit and budget, as every answer states them:\n"
            f"  {self.rate_limit_fields()}\n\n"
            f"A burst of {BURST} at once: the bucket holds 5, the rest are refused 429:\n"
            f"  {self.burst()}\n\n"
            if demo_policies
            else ""
        )
        return (
            f"Try, in another shell:\n  {self.answer()}\n\n"
            f"{limits}"
            f"Streamed, word by word:\n  {self.stream()}\n\n"
            f"This month's requests, tokens, cost, budget left and limits:\n  {self.usage()}\n"
            f"  {cli} usage\n\n"
            "The admin CLI (it reads .run/dev.env from here or a parent directory; elsewhere\n"
            f"run `set -a; . {self.dev_env}; set +a` first):\n"
            f"  {cli} tenants list\n  {cli} routing show\n"
            f"  {cli} keys create --tenant acme --name first-hour\n\n"
            f"Signed (RFC 9421; the key id and signing secret are in {self.dev_env}):\n"
            f"  set -a; . {self.dev_env}; set +a\n"
            f"  {cli} request --sign POST /v1/inference --data {shlex.quote(self._body())}\n\n"
            "A first hour with the gateway, step by step: docs/first-hour.md"
        )

    def _curl(self, options: str, body: str) -> str:
        return (
            f"curl {options} {self.url}/v1/inference -H 'Authorization: Bearer {self.key}' "
            f"-H 'Content-Type: application/json' -d {shlex.quote(body)}"
        )

    def _body(self, stream: bool = False) -> str:
        body: dict[str, object] = {"model": self.model}
        if stream:
            body["stream"] = True
        body["messages"] = [{"role": "user", "content": "Hello from the first hour"}]
        return json.dumps(body)
