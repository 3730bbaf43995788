"""A client that sends half a request and stalls is cut off by the server's read bounds.

Goal: issue 9 item 8: slow request bodies and headers had no read timeout, so each stalled client held a
connection (and a handler) for as long as it liked. Method: tiny timeouts injected through settings, a raw
TCP client that sends part of a request and then nothing; the test waits (bounded) for the server's
answer: a 408 for a stalled body, a closed connection for stalled headers. No wall-clock assertion.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from aiohttp import web
from eth_account.signers.local import LocalAccount

from proxy.app.serve import app_runner
from proxy.devnet.anvil import AnvilNode, free_tcp_port
from proxy.devnet.simulator import Simulators
from proxy.devnet.tokens import DevnetTokens
from tests.fixtures.app import router_settings, start_router

INJECTED_TIMEOUT_S = 0.2
# Far above the injected timeout: only a server that never times out reaches it.
ANSWER_WAIT_S_MAX = 20.0
HALF_A_REQUEST = (
    b"POST /v1/auth/challenge HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100\r\n\r\n"
    b'{"address": "0x'
)


@pytest.fixture
def slow_settings(
    anvil: AnvilNode,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
    simulator: Simulators,
    database_url: str,
) -> Any:
    return router_settings(
        anvil=anvil,
        tokens=tokens,
        settlement_key=anvil_accounts[0].key.hex(),
        simulator_base_url=simulator.base_url,
        database_url=database_url,
        request_body_read_timeout_s=INJECTED_TIMEOUT_S,
        request_header_read_timeout_s=INJECTED_TIMEOUT_S,
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_stalled_body_gets_408(
    aiohttp_client: Any,
    slow_settings: Any,
    anvil: AnvilNode,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
    simulator: Simulators,
) -> None:
    async with start_router(
        aiohttp_client,
        slow_settings,
        anvil=anvil,
        tokens=tokens,
        anvil_accounts=anvil_accounts,
        simulator=simulator,
    ) as router:
        before = await router.snapshot()
        server = router.client.server
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            writer.write(HALF_A_REQUEST)
            await writer.drain()
            async with asyncio.timeout(ANSWER_WAIT_S_MAX):
                status_line = await reader.readline()
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(int(_header(head, b"content-length")))
        finally:
            writer.close()
        assert status_line.startswith(b"HTTP/1.1 408"), status_line
        assert b'"code": "request_timeout"' in body
        assert b'"type": "invalid_request_error"' in body
        assert await router.snapshot() == before


def _header(head: bytes, name: bytes) -> bytes:
    for line in head.split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    raise AssertionError(f"no {name!r} header in {head!r}")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_stalled_headers_close_the_connection(slow_settings: Any) -> None:
    recursion_limit = (
        sys.getrecursionlimit()
    )  # app_runner restores CPython's; give this session its own back.
    port = free_tcp_port()
    runner = await app_runner(slow_settings)
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"POST /v1/auth/challenge HTTP/1.1\r\nHost: localhost\r\n")
            await writer.drain()
            async with asyncio.timeout(ANSWER_WAIT_S_MAX):
                # The default keep-alive timeout (3,630 s) would leave this read waiting past the bound.
                assert await reader.read() == b""
        finally:
            writer.close()
    finally:
        await runner.cleanup()
        sys.setrecursionlimit(recursion_limit)
