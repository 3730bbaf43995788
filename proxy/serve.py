"""`megarouter serve`: runs the API server from a config file until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from aiohttp import web

from proxy.app import create_app
from proxy.config import ConfigError, load_settings

__all__ = ["run_server"]


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
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        print(f"megarouter listening on http://{settings.host}:{settings.port}", file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0
