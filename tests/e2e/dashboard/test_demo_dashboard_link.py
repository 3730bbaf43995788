"""`megarouter demo` (what ./scripts/run starts) prints a dashboard link that opens it signed in as the
operator, once. Method: run the demo as a process in its own group until its banner ends, open the printed
link in headless Chromium, and check the session; then open it again (refused) and kill the group."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import BrowserContext

from proxy.devnet.anvil import free_tcp_port

DEMO_READY_TIMEOUT_S = 120
LINK = re.compile(r"^\s+(http://127\.0\.0\.1:\d+/dashboard/login\?token=[A-Za-z0-9_-]+)$")
LAST_BANNER_LINE = "admin token (this run)"


@contextlib.asynccontextmanager
async def demo(state_dir: Path) -> AsyncIterator[list[str]]:
    """Runs the demo until the last line of its banner; yields the lines printed; SIGKILLs the group."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy",
        "demo",
        "--port",
        str(free_tcp_port()),
        "--state-dir",
        str(state_dir),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(DEMO_READY_TIMEOUT_S):
            while not lines or LAST_BANNER_LINE not in lines[-1]:
                line = (await process.stdout.readline()).decode()
                assert line, f"the demo exited before its banner ended: {lines}"
                lines.append(line.rstrip("\n"))
        yield lines
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


async def test_the_demo_prints_a_link_that_opens_the_dashboard_signed_in_once(
    browser_context: BrowserContext, tmp_path: Path
) -> None:
    async with demo(tmp_path / ".megarouter") as printed:
        (link,) = [match.group(1) for line in printed if (match := LINK.match(line))]
        base = link.split("/dashboard/")[0]
        page = await browser_context.new_page()
        await page.goto(link)
        await page.wait_for_url(f"{base}/dashboard")
        await page.wait_for_selector("body[data-ready=true]")
        assert await page.text_content("#who") == "operator"
        session = await page.evaluate("fetch('/dashboard/api/session').then((r) => r.json())")
        assert session["features"]["metrics"] is True
        await page.screenshot(path=str(tmp_path / "demo-dashboard.png"), full_page=True)

        await browser_context.clear_cookies()
        await page.goto(link)
        await page.wait_for_url(f"{base}/dashboard/login?error=link_invalid")
        assert await page.is_visible("#error")
