"""Hostile connections against `api-router serve` on real uvicorn, over raw sockets: heads
that never finish, connections that send nothing, heads too large or with too many fields."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from contextlib import ExitStack

import httpx

from tests.support.raw_http import (
    closed_by_server,
    connect,
    exchange,
    parse_answers,
    read_until_closed,
    wait_all_closed,
)
from tests.support.stack import Stack, bearer, chat

PARTIAL_HEAD = b"POST /v1/inference HTTP/1.1\r\nHost: x\r\n"
# Short deadlines so the drills take seconds; the defaults are 10 s and 5 s.
DEADLINES = {"header_timeout_s": 4.0, "keep_alive_s": 3.0}


def trickle(conns: list[socket.socket], until: float) -> None:
    """One more header byte on each connection every 0.2 s, until ``until`` (monotonic)."""
    while time.monotonic() < until:
        for conn in conns:
            conn.sendall(b"x")
        time.sleep(0.2)


async def test_slow_and_silent_connections_are_closed_while_requests_are_answered(
    stack: Stack,
) -> None:
    stack.worker("node-a")
    gateway = stack.gateway_process(server=DEADLINES)
    key = await stack.create_key()
    with ExitStack() as opened:
        trickling = [opened.enter_context(connect(gateway.port)) for _ in range(100)]
        silent = [opened.enter_context(connect(gateway.port)) for _ in range(20)]
        for conn in trickling:
            conn.sendall(PARTIAL_HEAD)
        # Bytes keep coming for 3 s (they must not extend the 4 s deadline), then stop
        # short of it, so no byte of ours crosses the server's close.
        trickler = asyncio.create_task(
            asyncio.to_thread(trickle, trickling, time.monotonic() + 3.0)
        )
        async with httpx.AsyncClient(base_url=gateway.url, headers=bearer(key)) as client:
            answer = await client.post("/v1/inference", json=chat())
        held_meanwhile = sum(not closed_by_server(conn) for conn in trickling + silent)
        await trickler
        trickled_answers = await asyncio.to_thread(wait_all_closed, trickling, 20)
        silent_answers = await asyncio.to_thread(wait_all_closed, silent, 20)

    assert answer.status_code == 200, answer.text
    assert held_meanwhile == 120
    timed_out = [parse_answers(raw) for raw in trickled_answers]
    assert [[a.status for a in answers] for answers in timed_out] == [[408]] * 100
    assert {answers[0].error()["code"] for answers in timed_out} == {"request_timeout"}
    assert all(answers[0].headers["connection"] == "close" for answers in timed_out)
    assert silent_answers == [b""] * 20  # idle: closed without a word


def test_a_body_left_unread_after_its_answer_cannot_hold_the_connection(stack: Stack) -> None:
    gateway = stack.gateway_process(check="healthz", server=DEADLINES)
    with connect(gateway.port) as conn:
        # No credentials: answered 401 before the body is read; the client goes on sending.
        conn.sendall(
            b"POST /v1/inference HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000\r\n\r\n{"
        )
        until = time.monotonic() + 3.0
        while time.monotonic() < until:
            conn.sendall(b" ")
            time.sleep(0.2)
        # Times out (failing the test) unless the gateway closes the connection.
        answers = parse_answers(read_until_closed(conn))
    assert [a.status for a in answers] == [401]


def _request(head_lines: list[bytes]) -> bytes:
    return b"GET /v1/status/healthz HTTP/1.1\r\n" + b"".join(head_lines) + b"\r\n"


def test_heads_over_the_limits_are_431(stack: Stack) -> None:
    gateway = stack.gateway_process(check="healthz")
    heads = {
        "1 MB field": [b"Host: x\r\n", b"X-Big: " + b"a" * 1_000_000 + b"\r\n"],
        "100 KB field": [b"Host: x\r\n", b"X-Big: " + b"a" * 100_000 + b"\r\n"],
        "33 KiB of fields": [
            b"Host: x\r\n",
            *[b"X-F%02d: %s\r\n" % (i, b"a" * 500) for i in range(66)],
        ],
        "101 fields": [b"Host: x\r\n", *[b"X-F%03d: v\r\n" % i for i in range(100)]],
        "1000 fields": [b"Host: x\r\n", *[b"X-F%04d: v\r\n" % i for i in range(1000)]],
    }
    for name, lines in heads.items():
        answers = exchange(gateway.port, _request(lines))
        assert [a.status for a in answers] == [431], name
        error = answers[0].error()
        assert error["code"] == "headers_too_large", name
        assert error["request_id"] == answers[0].headers["x-request-id"]
        assert answers[0].headers["connection"] == "close"


def test_heads_within_the_limits_are_served(stack: Stack) -> None:
    gateway = stack.gateway_process(check="healthz")
    close = b"Connection: close\r\n"
    at_the_count = [b"Host: x\r\n", *[b"X-F%02d: v\r\n" % i for i in range(98)], close]
    near_the_size = [b"Host: x\r\n", b"X-Big: " + b"a" * 32_000 + b"\r\n", close]
    for lines in (at_the_count, near_the_size):
        assert [a.status for a in exchange(gateway.port, _request(lines))] == [200]


def test_a_never_ending_field_is_cut_off_at_the_limit(stack: Stack) -> None:
    gateway = stack.gateway_process(check="healthz")
    sent = 0
    with connect(gateway.port) as conn:
        conn.sendall(b"GET /v1/status/healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            while sent < 20_000_000 and not closed_by_server(conn):
                conn.sendall(b"a" * 65536)
                sent += 65536
        except OSError:  # the server closed while we were still sending
            pass
        answers = parse_answers(read_until_closed(conn))
    assert [a.status for a in answers] == [431]
    assert sent < 20_000_000


def test_a_small_head_with_a_large_body_in_one_write_is_served(stack: Stack) -> None:
    """The head ends inside the limit; the 200 KB after it are body, not head."""
    stack.worker("node-a")
    gateway = stack.gateway_process()
    key = asyncio.run(stack.create_key())
    body = json.dumps(chat(content="a" * 200_000)).encode()
    head = (
        f"POST /v1/inference HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    answers = exchange(gateway.port, head + body)
    assert [a.status for a in answers] == [200]


def test_pipelined_requests_are_each_answered(stack: Stack) -> None:
    gateway = stack.gateway_process(check="healthz")
    get = b"GET /v1/status/healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /v1/status/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answers = exchange(gateway.port, get * 3 + last)
    assert [a.status for a in answers] == [200] * 4


def test_a_malformed_request_is_400_in_the_error_shape(stack: Stack) -> None:
    gateway = stack.gateway_process(check="healthz")
    answers = exchange(gateway.port, b"GET /v1/status/healthz HTTP/9.9 nonsense\r\n\r\n")
    assert [a.status for a in answers] == [400]
    assert answers[0].error()["code"] == "invalid_request"
    assert answers[0].error()["request_id"].startswith("req_")


def test_a_head_ending_in_the_read_that_crosses_the_limit_is_not_refused(stack: Stack) -> None:
    """The head's last bytes and a body come in one read past the limit: the head still
    fits (its end is found across the two reads), so the request is answered (401: no key)."""
    gateway = stack.gateway_process(check="healthz")
    start = (
        b"POST /v1/inference HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Length: 65536\r\nX-Pad: "
    )
    padding = b"a" * (32_768 - len(start) - 4)
    with connect(gateway.port) as conn:
        conn.sendall(start + padding + b"\r\n\r")  # one byte short of a full 32 KiB head
        time.sleep(0.2)  # so the rest arrives as a read of its own
        conn.sendall(b"\n" + b" " * 65536)
        answers = parse_answers(read_until_closed(conn))
    assert [a.status for a in answers] == [401]
