"""Starts and stops an Anvil process (from the project's pinned npm package) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

__all__ = [
    "ANVIL_CHAIN_ID",
    "ANVIL_MNEMONIC",
    "AnvilNode",
    "AnvilNotFound",
    "find_anvil_binary",
    "free_tcp_port",
    "run_anvil",
]

ANVIL_CHAIN_ID = 31337
# Anvil's well-known default mnemonic: its accounts 0..9 are funded with 10,000 ETH each.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
ANVIL_READY_TIMEOUT_S = 30.0
ANVIL_STOP_TIMEOUT_S = 10.0


class AnvilNotFound(RuntimeError):
    """No anvil binary: run ./scripts/bootstrap (npm ci installs the pinned @foundry-rs/anvil)."""


@dataclass(frozen=True, slots=True)
class AnvilNode:
    rpc_url: str
    chain_id: int
    port: int
    process: asyncio.subprocess.Process


def find_anvil_binary(project_root: Path | None = None) -> str:
    """The project's pinned anvil first, then $MEGAROUTER_ANVIL, then one on PATH."""
    override = os.environ.get("MEGAROUTER_ANVIL")
    if override:
        return override
    roots = [project_root] if project_root else []
    roots += [Path.cwd(), Path(__file__).resolve().parents[2]]
    for root in roots:
        candidate = root / "node_modules" / ".bin" / "anvil"
        if candidate.exists():
            return str(candidate)
    on_path = shutil.which("anvil")
    if on_path:
        return on_path
    raise AnvilNotFound("anvil not found: run ./scripts/bootstrap in the project root")


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _wait_ready(rpc_url: str, process: asyncio.subprocess.Process) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    timeout = aiohttp.ClientTimeout(total=2.0)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ANVIL_READY_TIMEOUT_S
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while loop.time() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"anvil exited early with code {process.returncode}")
            with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                async with session.post(rpc_url, json=body) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise TimeoutError(f"anvil did not answer at {rpc_url} within {ANVIL_READY_TIMEOUT_S} s")


@contextlib.asynccontextmanager
async def run_anvil(
    *,
    port: int | None = None,
    extra_args: Sequence[str] = (),
    state_path: Path | None = None,
    log_path: Path | None = None,
) -> AsyncIterator[AnvilNode]:
    """Runs Anvil for the duration of the block; `state_path` makes its chain survive restarts."""
    port = port or free_tcp_port()
    args = [
        find_anvil_binary(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chain-id",
        str(ANVIL_CHAIN_ID),
        "--mnemonic",
        ANVIL_MNEMONIC,
        "--silent",
        *extra_args,
    ]
    if state_path is not None:
        args += ["--state", str(state_path)]
    # A log file opened once at start-up; the blocking open is negligible next to process start.
    log_file = open(log_path, "ab") if log_path else None  # noqa: SIM115, ASYNC230 - closed in finally below.
    process = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log_file or asyncio.subprocess.DEVNULL,
        stderr=log_file or asyncio.subprocess.DEVNULL,
    )
    rpc_url = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(rpc_url, process)
        yield AnvilNode(rpc_url=rpc_url, chain_id=ANVIL_CHAIN_ID, port=port, process=process)
    finally:
        if process.returncode is None:
            # SIGTERM lets anvil dump --state before it exits.
            process.terminate()
            try:
                async with asyncio.timeout(ANVIL_STOP_TIMEOUT_S):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        if log_file is not None:
            log_file.close()
