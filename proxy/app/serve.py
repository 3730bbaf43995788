"""`megarouter serve`: runs the API server from a config file until SIGINT or SIGTERM.

Also owns how any MegaRouter process serves HTTP (`app_runner`, shared with the demo): the connection
limits aiohttp enforces before a handler runs, and the interpreter's recursion limit.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

import structlog
from aiohttp import web

from proxy.app import create_app
from proxy.app.config import ConfigError, load_settings
from proxy.settings import Settings

__all__ = ["RECURSION_LIMIT", "app_runner", "restore_recursion_limit", "run_server"]

# CPython's own default. py_ecc (imported by the eth libraries) raises the limit to 100,000 at import, so
# any recursion on request data (a JSON parser, a serializer) could run the C stack out long before
# Python noticed: a segfault instead of a RecursionError. Request bodies are depth-bounded at the edge;
# this keeps everything else safe too.
RECURSION_LIMIT = 1000
log = structlog.get_logger("megarouter.serve")


def restore_recursion_limit() -> None:
    """Puts the recursion limit back to CPython's default; call once every module is imported."""
    raised = sys.getrecursionlimit()
    if raised != RECURSION_LIMIT:
        sys.setrecursionlimit(RECURSION_LIMIT)
        log.info("recursion_limit_restored", raised_to=raised, restored_to=RECURSION_LIMIT)


async def app_runner(settings: Settings) -> web.AppRunner:
    """The app, set up (every resource opened) and ready for a TCPSite."""
    runner = web.AppRunner(
        create_app(settings),
        # aiohttp starts this timer when a connection opens and when a response ends, and closes the
        # connection if no complete request head arrived by then: it is the header read timeout.
        keepalive_timeout=settings.request_header_read_timeout_s,
    )
    await runner.setup()
    # After setup, every module the app uses is imported (py_ecc included).
    restore_recursion_limit()
    return runner


async def run_server(config_path: Path | None, environ: Mapping[str, str]) -> int:
    try:
        settings = load_settings(config_path, environ)
    except ConfigError as error:
        print(f"megarouter: {error}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = await app_runner(settings)
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        print(f"megarouter listening on http://{settings.host}:{settings.port}", file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0
