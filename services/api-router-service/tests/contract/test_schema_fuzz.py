"""Schemathesis, every check on, against the OpenAPI document a real gateway serves, once
with the API key as the security parameter and once with every request signed.

Bounded and repeatable: a fixed example count per operation and a fixed seed (about a
minute for both runs). The only adjustment to what schemathesis generates is in
``tests/support/schemathesis_hooks.py``, with its reason.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest

from tests.support.fake_openai import FakeOpenAI
from tests.support.stack import Stack, bearer

EXAMPLES = 100  # per operation
SEED = 20261126
# The API key goes where the document says it may: either of its two security schemes.
API_KEY_AUTH = """
[auth.openapi.bearerAuth]
bearer = "${FUZZ_API_KEY}"
[auth.openapi.apiKeyHeader]
api_key = "${FUZZ_API_KEY}"
"""


@dataclass(frozen=True)
class FuzzRun:
    exit_code: int
    generated: int
    operations: int  # the document's operations the run called
    failures: int  # failures and errors in its report, the stateful scenarios' included
    output: str


def fuzz(stack: Stack, gateway_url: str, name: str, auth: str, env: dict[str, str]) -> FuzzRun:
    config = stack.tmp / f"{name}.toml"
    # No cache: a run must not learn from the last one (nor write into the work tree).
    config.write_text(
        'hooks = "tests.support.schemathesis_hooks"\n[cache]\nenabled = false\n' + auth
    )
    report = stack.tmp / f"{name}.junit.xml"
    argv = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"{gateway_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--no-color",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
    ]
    done = subprocess.run(
        argv,
        # Run from the test's directory; `tests.support` imports from the service root.
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), **env},
        cwd=stack.tmp,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert report.exists(), done.stdout + done.stderr  # the run did not even start
    suite = ElementTree.parse(report).getroot()
    cases = suite.findall(".//testcase")
    generated = re.search(r"(\d+) generated", done.stdout)
    tested = re.search(r"Tested: (\d+)", done.stdout)
    return FuzzRun(
        exit_code=done.returncode,
        generated=int(generated[1]) if generated else 0,
        operations=int(tested[1]) if tested else 0,
        failures=sum(len(case.findall("failure")) + len(case.findall("error")) for case in cases),
        output=done.stdout[-20000:] + done.stderr[-5000:],
    )


@pytest.fixture
def compatible() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(models=["llama3.2"]).start()
    yield server
    server.stop()


@pytest.mark.timeout(420)
async def test_the_served_document_holds_for_the_fuzzer_with_a_key_and_signed(
    audited_stack: Stack, compatible: FakeOpenAI
) -> None:
    stack = audited_stack
    stack.audit_sink()  # the audit listing reads what it stores
    # The model of the document's examples on a node of each kind, so that everything the
    # document allows has a node that honours it (on an Ollama-only fleet, a forced tool
    # call is rightly a 400: see test_openai_tools.py).
    stack.worker("node-a")
    stack.worker("node-b", "--backend", "openai", "--backend-url", compatible.url)
    gateway = stack.gateway_process()
    issued = await stack.issue_key("acme", scopes=("inference", "audit:read", "admin"))
    own = {"FUZZ_KEY_ID": issued.record.id}  # see before_call in the hooks
    with_key = fuzz(
        stack, gateway.url, "api-key", API_KEY_AUTH, {**own, "FUZZ_API_KEY": issued.api_key}
    )
    signing = {"FUZZ_SIGNING_KEY_ID": issued.record.id}
    signing["FUZZ_SIGNING_SECRET"] = issued.signing_secrets[0].secret
    signed = fuzz(stack, gateway.url, "signed", "", {**own, **signing})
    for run in (with_key, signed):
        assert (run.exit_code, run.failures) == (0, 0), run.output
        assert run.operations == 27, run.output
        assert run.generated > 20 * EXAMPLES, run.output
        # Credentials that did not work would show as this warning, not as failures.
        assert "Authentication failed" not in run.output, run.output
    assert "Exception in ASGI application" not in gateway.log()
    # The signed run's completions were answered, and recorded as signed requests.
    async with httpx.AsyncClient(base_url=gateway.url, headers=bearer(issued.api_key)) as client:
        listing = await client.get("/v1/audit/requests", params={"tenant": "acme", "limit": 500})
    newest = listing.json()["data"]  # newest first: the signed run's
    assert ("signature", 200) in {(r["auth_method"], r["http_status"]) for r in newest}
    sys.stderr.write(
        "\nschemathesis: "
        + json.dumps(
            {
                name: {
                    "operations": run.operations,
                    "cases": run.generated,
                    "failures": run.failures,
                }
                for name, run in (("api_key", with_key), ("signed", signed))
            }
        )
        + "\n"
    )
