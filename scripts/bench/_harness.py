"""Shared pieces of the benchmarks in scripts/bench: figures, machine description, processes, servers, keys.

Owns only benchmark plumbing: nothing here is imported by the proxy or the tests. The servers a benchmark
measures can run in child processes (`child_simulators`, `child_router`) so that the CPU time read from
/proc belongs to one role only, and the load generator can run in its own process (`ClientRunner`) so its
own work does not share the measured server's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import multiprocessing.connection
import os
import platform
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from sqlalchemy.engine import make_url
from web3 import AsyncHTTPProvider, AsyncWeb3

from proxy.devnet.anvil import ANVIL_MNEMONIC, AnvilNode
from proxy.devnet.tokens import DevnetTokens, deploy_test_tokens, mint_many
from proxy.settings import Settings
from x402.client import sign_payment
from x402.codec import encode_header
from x402.models import PaymentRequired

__all__ = [
    "ChildServer",
    "ClientJob",
    "ClientResult",
    "ClientRunner",
    "RequestOutcome",
    "anvil_accounts",
    "bench_main",
    "child_passthrough",
    "child_router",
    "child_simulators",
    "deploy_and_fund",
    "deploy_and_fund_on",
    "fresh_database",
    "funded_api_key",
    "load_average_line",
    "machine_description",
    "mean_ms",
    "percentile_ms",
    "process_tree",
    "processes_cpu_s",
    "rss_mb",
    "run_client_job",
    "serve",
]

PG_CONNECT_TIMEOUT_S = 5.0
CHILD_START_TIMEOUT_S = 60.0
CHILD_STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 60.0
# Bytes of the child router's log file shown when it fails to start.
LOG_TAIL_BYTES_MAX = 4000


def percentile_ms(latencies_s: Sequence[float], percent: int) -> float:
    """Nearest-rank percentile, so every figure printed is a latency that was really observed."""
    assert latencies_s
    assert 0 < percent <= 100
    ordered = sorted(latencies_s)
    return ordered[math.ceil(percent / 100 * len(ordered)) - 1] * 1000


def mean_ms(latencies_s: Sequence[float]) -> float:
    assert latencies_s
    return sum(latencies_s) / len(latencies_s) * 1000


def anvil_accounts(count: int) -> list[LocalAccount]:
    assert count >= 1
    Account.enable_unaudited_hdwallet_features()
    return [
        Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
        for index in range(count)
    ]


def machine_description(database_url: str | None = None) -> str:
    cpu_model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    backend = f", database {make_url(database_url).get_backend_name()}" if database_url else ""
    # Other work on the machine skews every figure; the load average at the start says how much there was.
    return (
        f"machine: {os.cpu_count()} CPUs ({cpu_model}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}{backend}, "
        f"{load_average_line('at start')}"
    )


def bench_main(bounded_run: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """A benchmark's `main`: refuses python -O (assertions stripped), then runs `bounded_run()`."""
    if sys.flags.optimize:
        print("refusing to run with python -O: the proxy's assertions would be stripped", file=sys.stderr)
        return 2
    asyncio.run(bounded_run())
    return 0


def load_average_line(when: str) -> str:
    load_1m, load_5m, _ = os.getloadavg()
    return f"load average {load_1m:.2f} (1 min) {load_5m:.2f} (5 min) {when}"


def _proc_stat_fields(pid: int) -> list[str]:
    """proc(5) stat fields after the command name: state is [0], ppid [1], utime [11], stime [12]."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (the npm `anvil` is a node shim that runs the real binary as a child)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                parents[int(entry.name)] = int(_proc_stat_fields(int(entry.name))[1])
    tree = [pid]
    for candidate in tree:
        tree.extend(child for child, parent in parents.items() if parent == candidate)
    return tree


def processes_cpu_s(pids: Sequence[int]) -> float:
    """User + system CPU seconds of the given processes, from /proc (0.0 for any that is gone)."""
    total_ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            fields = _proc_stat_fields(pid)
            total_ticks += int(fields[11]) + int(fields[12])
    return total_ticks / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident set size of the process in MB, from /proc (0.0 when it is gone)."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def deploy_and_fund(
    w3: AsyncWeb3[Any], accounts: Sequence[LocalAccount], *, payer_indexes: Sequence[int], amount_atomic: int
) -> DevnetTokens:
    """Deploys the test tokens from account 0 and mints `amount_atomic` of each to every payer."""
    assert amount_atomic > 0
    tokens = await deploy_test_tokens(w3, accounts[0])
    await mint_many(
        w3,
        accounts[0],
        tokens=[token.address for token in tokens.all()],
        recipients=[accounts[index].address for index in payer_indexes],
        amount_atomic=amount_atomic,
    )
    return tokens


async def deploy_and_fund_on(
    anvil: AnvilNode, accounts: Sequence[LocalAccount], *, payer_indexes: Sequence[int], amount_atomic: int
) -> DevnetTokens:
    """deploy_and_fund through a web3 client of its own, closed before returning."""
    w3 = AsyncWeb3(AsyncHTTPProvider(anvil.rpc_url))
    try:
        return await deploy_and_fund(w3, accounts, payer_indexes=payer_indexes, amount_atomic=amount_atomic)
    finally:
        await w3.provider.disconnect()


@contextlib.asynccontextmanager
async def fresh_database(database_url: str | None, directory: Path) -> AsyncIterator[str]:
    """SQLite in `directory`, or a new database on the given PostgreSQL server, dropped afterwards."""
    if database_url is None:
        yield f"sqlite+aiosqlite:///{directory / 'megarouter.db'}"
        return
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise SystemExit("--database-url must be a PostgreSQL URL (SQLite is the default)")
    admin_dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"megarouter_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_dsn, timeout=PG_CONNECT_TIMEOUT_S)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield url.set(drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False)
    finally:
        admin = await asyncpg.connect(admin_dsn, timeout=PG_CONNECT_TIMEOUT_S)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """The app on a free port of 127.0.0.1; its cleanup contexts run on setup and on exit."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


# --- Servers in child processes -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildServer:
    """A server running in a child process: what it announced (base URLs by name) and its process id."""

    urls: dict[str, str]
    pid: int

    @property
    def url(self) -> str:
        return next(iter(self.urls.values()))


async def _serve_until_told(connection: multiprocessing.connection.Connection, urls: dict[str, str]) -> None:
    connection.send(urls)
    # The parent sends anything (or dies, closing the pipe) to stop this server.
    with contextlib.suppress(EOFError):
        await asyncio.get_running_loop().run_in_executor(None, connection.recv)


async def _simulators_child(
    connection: multiprocessing.connection.Connection, names: tuple[str, ...]
) -> None:
    from proxy.devnet.simulator import start_simulators

    async with start_simulators(names) as simulators:
        await _serve_until_told(
            connection, {name: server.base_url for name, server in simulators.servers.items()}
        )


def _simulators_child_main(connection: multiprocessing.connection.Connection, names: tuple[str, ...]) -> None:
    asyncio.run(_simulators_child(connection, names))


async def _router_child(connection: multiprocessing.connection.Connection, settings: Settings) -> None:
    from proxy.app import create_app

    async with serve(create_app(settings)) as url:
        await _serve_until_told(connection, {"router": url})


def _router_child_main(
    connection: multiprocessing.connection.Connection, settings: Settings, log_path: str
) -> None:
    # The router logs one line per request (to stderr): rendering it counts as its CPU time, reading it not.
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log_fd, sys.stderr.fileno())
    asyncio.run(_router_child(connection, settings))


def _tail(log_path: Path | None) -> str:
    if log_path is None or not log_path.exists():
        return ""
    return log_path.read_bytes()[-LOG_TAIL_BYTES_MAX:].decode(errors="replace")


@contextlib.asynccontextmanager
async def _child(
    target: Any, args: tuple[Any, ...], *, what: str, log_path: Path | None
) -> AsyncIterator[ChildServer]:
    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    process = context.Process(target=target, args=(child_end, *args), name=f"bench-{what}", daemon=True)
    process.start()
    child_end.close()
    loop = asyncio.get_running_loop()
    try:
        try:
            async with asyncio.timeout(CHILD_START_TIMEOUT_S):
                urls: dict[str, str] = await loop.run_in_executor(None, parent_end.recv)
        except (EOFError, TimeoutError) as error:
            raise RuntimeError(f"the {what} process did not start: {error!r}\n{_tail(log_path)}") from error
        assert process.pid is not None
        yield ChildServer(urls=urls, pid=process.pid)
    finally:
        with contextlib.suppress(OSError):
            parent_end.send("stop")
        await loop.run_in_executor(None, process.join, CHILD_STOP_TIMEOUT_S)
        if process.is_alive():
            process.terminate()  # Only this benchmark's own child, by its handle.
            await loop.run_in_executor(None, process.join, CHILD_STOP_TIMEOUT_S)
        parent_end.close()


def child_simulators(names: Sequence[str]) -> contextlib.AbstractAsyncContextManager[ChildServer]:
    """Simulated providers (one server per name) in a child process; `urls` maps name → base URL."""
    assert names
    return _child(_simulators_child_main, (tuple(names),), what="simulator", log_path=None)


def _passthrough_app(upstream_url: str) -> web.Application:
    """The floor: a bare aiohttp proxy forwarding the body and streaming the answer back, no accounting."""

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)) as session:
            app["session"] = session
            yield

    async def forward(request: web.Request) -> web.StreamResponse:
        session: aiohttp.ClientSession = request.app["session"]
        headers = {
            "Authorization": request.headers.get("Authorization", ""),
            "Content-Type": "application/json",
        }
        async with session.post(
            upstream_url + request.path, data=await request.read(), headers=headers
        ) as upstream:
            response = web.StreamResponse(status=upstream.status)
            response.content_type = upstream.content_type
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/v1/chat/completions", forward)
    return app


async def _passthrough_child(connection: multiprocessing.connection.Connection, upstream_url: str) -> None:
    async with serve(_passthrough_app(upstream_url)) as url:
        await _serve_until_told(connection, {"passthrough": url})


def _passthrough_child_main(connection: multiprocessing.connection.Connection, upstream_url: str) -> None:
    asyncio.run(_passthrough_child(connection, upstream_url))


def child_passthrough(upstream_url: str) -> contextlib.AbstractAsyncContextManager[ChildServer]:
    """A bare aiohttp pass-through proxy to `upstream_url` in a child process (the benchmarks' floor)."""
    return _child(_passthrough_child_main, (upstream_url,), what="pass-through", log_path=None)


def child_router(settings: Settings, log_path: Path) -> contextlib.AbstractAsyncContextManager[ChildServer]:
    """MegaRouter (create_app on a free port of 127.0.0.1) in a child process, logging to `log_path`."""
    return _child(_router_child_main, (settings, str(log_path)), what="router", log_path=log_path)


# --- The caller's side ----------------------------------------------------------------------------------


def _sign_text(account: LocalAccount, text: str) -> str:
    signature: bytes = Account.sign_message(encode_defunct(text=text), private_key=account.key).signature
    return "0x" + signature.hex()


async def _json_or_raise(response: aiohttp.ClientResponse, status: int, what: str) -> dict[str, Any]:
    document: dict[str, Any] = await response.json(content_type=None)
    if response.status != status:
        raise RuntimeError(f"{what}: expected {status}, got {response.status}: {document}")
    return document


async def funded_api_key(
    session: aiohttp.ClientSession, router_url: str, account: LocalAccount, *, amount_usd: str
) -> str:
    """What a wallet owner does once: x402 top-up of the wallet's credit, then a wallet-proven API key.

    After this the key's requests are paid from the credit, so the chain is not in their path.
    """
    topup_url = f"{router_url}/v1/credits/topup?amount={amount_usd}"
    async with session.post(topup_url) as response:
        offer = PaymentRequired.model_validate(await _json_or_raise(response, 402, "top-up offer"))
    payload = sign_payment(offer.accepts[0], account, now_unix_s=int(time.time()), resource=offer.resource)
    async with session.post(topup_url, headers={"PAYMENT-SIGNATURE": encode_header(payload)}) as response:
        await _json_or_raise(response, 200, "top-up payment")
    async with session.post(f"{router_url}/v1/auth/challenge", json={"address": account.address}) as response:
        challenge = await _json_or_raise(response, 200, "challenge")
    body = {
        "address": account.address,
        "message": challenge["message"],
        "signature": _sign_text(account, challenge["message"]),
        "name": f"bench-{secrets.token_hex(4)}",
    }
    async with session.post(f"{router_url}/v1/keys", json=body) as response:
        created = await _json_or_raise(response, 201, "API key")
    key: str = created["key"]
    assert key
    return key


@dataclass(frozen=True)
class ClientJob:
    """`count` POSTs of `body` to `url` on `concurrency` connections; SSE read to the end when streaming."""

    url: str
    body: dict[str, Any]
    headers: dict[str, str]
    count: int
    concurrency: int
    # Response headers to keep per request (e.g. X-MegaRouter-Attempts).
    keep_headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequestOutcome:
    status: int
    ok: bool  # 200 and, for a stream, `data: [DONE]` reached without an error event.
    latency_s: float  # until the whole body (or stream) was read
    first_event_s: float | None  # streams: until the first `data:` line
    headers: dict[str, str]
    error: str = ""


@dataclass
class ClientResult:
    outcomes: list[RequestOutcome]
    wall_s: float
    client_cpu_s: float  # the client process's own CPU time over the pass
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def latencies_s(self) -> list[float]:
        return [outcome.latency_s for outcome in self.outcomes if outcome.ok]

    @property
    def first_events_s(self) -> list[float]:
        return [outcome.first_event_s for outcome in self.outcomes if outcome.ok and outcome.first_event_s]

    @property
    def ok_count(self) -> int:
        return sum(outcome.ok for outcome in self.outcomes)


async def _one_request(session: aiohttp.ClientSession, job: ClientJob) -> RequestOutcome:
    streaming = bool(job.body.get("stream"))
    started = time.perf_counter()
    first_event_s: float | None = None
    async with session.post(job.url, json=job.body, headers=job.headers) as response:
        kept = {name: response.headers.get(name, "") for name in job.keep_headers}
        if response.status != 200 or not streaming:
            text = await response.text()
            ok = response.status == 200
            return RequestOutcome(
                response.status, ok, time.perf_counter() - started, None, kept, "" if ok else text[:200]
            )
        done, error = False, ""
        async for line in response.content:
            if not line.startswith(b"data:"):
                continue
            if first_event_s is None:
                first_event_s = time.perf_counter() - started
            data = line[5:].strip()
            if data == b"[DONE]":
                done = True
            elif data.startswith(b'{"error"'):
                error = data.decode(errors="replace")[:200]
    return RequestOutcome(
        200,
        done and not error,
        time.perf_counter() - started,
        first_event_s,
        kept,
        error or ("" if done else "no [DONE]"),
    )


async def _run_client_job(job: ClientJob) -> ClientResult:
    assert job.count > 0
    assert job.concurrency > 0
    connector = aiohttp.TCPConnector(limit=job.concurrency)
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    outcomes: list[RequestOutcome] = []
    indexes = iter(range(job.count))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            for _ in indexes:
                try:
                    outcomes.append(await _one_request(session, job))
                except (aiohttp.ClientError, TimeoutError) as error:
                    outcomes.append(RequestOutcome(0, False, HTTP_TIMEOUT_S, None, {}, repr(error)[:200]))

        cpu_started_s, started = time.process_time(), time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for _ in range(min(job.concurrency, job.count)):
                group.create_task(worker())
        wall_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started_s
    statuses: dict[int, int] = {}
    for outcome in outcomes:
        statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
    assert len(outcomes) == job.count
    return ClientResult(outcomes=outcomes, wall_s=wall_s, client_cpu_s=cpu_s, statuses=statuses)


def run_client_job(job: ClientJob) -> ClientResult:
    """Runs one job to the end in this process (the ClientRunner's child calls this)."""
    return asyncio.run(_run_client_job(job))


class ClientRunner:
    """The load generator in its own process: its CPU work is not the server's, nor on its loop."""

    def __init__(self) -> None:
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))

    async def run(self, job: ClientJob) -> ClientResult:
        return await asyncio.get_running_loop().run_in_executor(self._pool, run_client_job, job)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
