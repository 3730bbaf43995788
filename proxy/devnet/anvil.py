"""Starts and stops an Anvil process (from the project's pinned npm package) on 127.0.0.1, and keeps its
chain in a state file that a crash cannot leave unreadable.

Anvil's own `--state` writes the file in place at exit (and, by `--state-interval`, in place too), so a
`kill -9` or a power cut during a write leaves it empty or cut short, and Anvil then refuses to start
(exiting with code 0). Here Anvil only ever loads the file; the snapshots are taken over RPC
(`anvil_dumpState`) after each new block and at stop, written to a temporary file, synced and renamed over
the old one, so the file always holds one whole snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import shutil
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

__all__ = [
    "ANVIL_CHAIN_ID",
    "ANVIL_MNEMONIC",
    "AnvilNode",
    "AnvilNotFound",
    "AnvilStateUnreadable",
    "find_anvil_binary",
    "free_tcp_port",
    "run_anvil",
    "snapshot_anvil_state",
    "state_file_problem",
]

ANVIL_CHAIN_ID = 31337
# Anvil's well-known default mnemonic: its accounts 0..9 are funded with 10,000 ETH each.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
ANVIL_READY_TIMEOUT_S = 30.0
ANVIL_STOP_TIMEOUT_S = 10.0
ANVIL_RPC_TIMEOUT_S = 10.0
# How often the chain is checked for a new block to snapshot: the most a crash can lose of the chain.
ANVIL_SNAPSHOT_INTERVAL_S = 0.25
# The keys every state file Anvil writes has; a file without them is not one Anvil can load.
ANVIL_STATE_KEYS = frozenset({"block", "accounts"})


class AnvilNotFound(RuntimeError):
    """No anvil binary: run ./scripts/bootstrap (npm ci installs the pinned @foundry-rs/anvil)."""


class AnvilStateUnreadable(RuntimeError):
    """The state file exists but Anvil could not load it (empty, cut short, or not a state at all)."""


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
        # The platform package's native binary, not the npm launcher in .bin: the launcher is a Node process
        # that spawns Anvil, so a SIGKILL (a crash test, a timeout) would stop Node and orphan Anvil.
        for native in sorted((root / "node_modules" / "@foundry-rs").glob("anvil-*/bin/anvil")):
            if os.access(native, os.X_OK):
                return str(native)
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


def state_file_problem(path: Path) -> str | None:
    """Why Anvil could not load `path` (None when it can), checked before Anvil is given it."""
    try:
        state = json.loads(path.read_bytes())
    except OSError as error:
        return f"cannot read it ({error.strerror})"
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "it is empty or cut short" if path.stat().st_size == 0 else "it is not complete JSON"
    if not isinstance(state, dict) or not state.keys() >= ANVIL_STATE_KEYS:
        return "it is not an Anvil state"
    return None


def _write_atomically(path: Path, data: bytes) -> None:
    """Whole old file or whole new file, whenever the process or the machine stops."""
    temporary = path.with_name(f".{path.name}.tmp")  # One writer at a time: the keeper never overlaps two.
    with open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # The rename itself survives a power cut only once its directory is synced.
    finally:
        os.close(directory)


async def _rpc(session: aiohttp.ClientSession, rpc_url: str, method: str) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": []}
    async with session.post(rpc_url, json=body) as response:
        payload = await response.json()
    if "result" not in payload:
        raise RuntimeError(f"anvil {method} failed: {payload.get('error')}")
    return payload["result"]


async def snapshot_anvil_state(session: aiohttp.ClientSession, rpc_url: str, path: Path) -> None:
    """Writes the chain's state to `path` atomically, in the JSON form `--load-state` reads."""
    dumped = await _rpc(session, rpc_url, "anvil_dumpState")  # Hex of gzipped JSON.
    state = gzip.decompress(bytes.fromhex(str(dumped).removeprefix("0x")))
    await asyncio.to_thread(_write_atomically, path, state)


async def _snapshot_on_new_blocks(
    session: aiohttp.ClientSession, rpc_url: str, path: Path, *, interval_s: float, stop: asyncio.Event
) -> None:
    """Snapshots whenever the chain has a new block, until `stop` is set (never cut mid-write)."""
    snapshotted_block: str | None = None
    while not stop.is_set():
        # A snapshot missed (Anvil busy or stopping) is taken at the next round; the file stays whole.
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            block = await _rpc(session, rpc_url, "eth_blockNumber")
            if block != snapshotted_block:
                await snapshot_anvil_state(session, rpc_url, path)
                snapshotted_block = block
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)


@contextlib.asynccontextmanager
async def _state_keeper(rpc_url: str, path: Path | None, interval_s: float) -> AsyncIterator[None]:
    """Keeps `path` a recent, whole snapshot while the block runs, and takes a last one at its end."""
    if path is None:
        yield
        return
    timeout = aiohttp.ClientTimeout(total=ANVIL_RPC_TIMEOUT_S)
    stop = asyncio.Event()
    async with aiohttp.ClientSession(timeout=timeout) as session:
        task = asyncio.create_task(
            _snapshot_on_new_blocks(session, rpc_url, path, interval_s=interval_s, stop=stop)
        )
        try:
            yield
        finally:
            stop.set()
            await task
            # Anvil may be gone already (killed): the last periodic snapshot then stands.
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                await snapshot_anvil_state(session, rpc_url, path)


def _load_state_args(state_path: Path | None) -> list[str]:
    """`--load-state` when there is a state to continue; raises AnvilStateUnreadable for a broken one."""
    if state_path is None or not state_path.exists():
        return []
    problem = state_file_problem(state_path)
    if problem is not None:
        raise AnvilStateUnreadable(f"Anvil's state file {state_path} is unreadable: {problem}")
    return ["--load-state", str(state_path)]


@contextlib.asynccontextmanager
async def run_anvil(
    *,
    port: int | None = None,
    extra_args: Sequence[str] = (),
    state_path: Path | None = None,
    log_path: Path | None = None,
    snapshot_interval_s: float = ANVIL_SNAPSHOT_INTERVAL_S,
) -> AsyncIterator[AnvilNode]:
    """Runs Anvil for the duration of the block; `state_path` makes its chain survive restarts, crashes
    included. Raises AnvilStateUnreadable, before starting anything, when that file cannot be loaded."""
    assert snapshot_interval_s > 0
    # Read once at start-up, before anything runs: the blocking read is negligible next to process start.
    load_state_args = _load_state_args(state_path)
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
        *load_state_args,
    ]
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
        async with _state_keeper(rpc_url, state_path, snapshot_interval_s):
            yield AnvilNode(rpc_url=rpc_url, chain_id=ANVIL_CHAIN_ID, port=port, process=process)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(ANVIL_STOP_TIMEOUT_S):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        if log_file is not None:
            log_file.close()
