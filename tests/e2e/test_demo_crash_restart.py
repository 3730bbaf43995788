"""The demo comes back after its whole process group is killed (kill -9), and after its chain state was
left unreadable it starts over cleanly: chain, deployment record and database set aside together.

Method: `megarouter demo` as a real process group on a temporary state directory; wait (bounded) for its
banner and for a snapshot of the deployed chain; SIGKILL the group; start it again and read what it says.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from proxy.devnet.anvil import free_tcp_port, state_file_problem

BANNER = "MegaRouter demo is running"
DEMO_READY_TIMEOUT_S = 60.0
SNAPSHOT_WAIT_S_MAX = 20.0


@contextlib.asynccontextmanager
async def _demo(state_dir: Path) -> AsyncIterator[list[str]]:
    """Runs the demo until its banner; yields the lines printed before it; SIGKILLs the group on exit."""
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
        start_new_session=True,  # Its own process group, Anvil included: killed together below.
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(DEMO_READY_TIMEOUT_S):
            while not lines or BANNER not in lines[-1]:
                line = (await process.stdout.readline()).decode()
                assert line, f"the demo exited before its banner: {lines}"
                lines.append(line.rstrip("\n"))
        yield lines
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


def _snapshot_block(state: Path) -> int | None:
    if not state.exists() or state_file_problem(state) is not None:
        return None
    return int(json.loads(state.read_bytes())["block"]["number"], 16)


async def _wait_for_snapshot(state: Path) -> None:
    """Until the state file holds a snapshot with the deployed tokens (Anvil mines a block per tx)."""
    deadline_s = time.monotonic() + SNAPSHOT_WAIT_S_MAX
    while not (_snapshot_block(state) or 0) > 0:
        assert time.monotonic() < deadline_s, "no snapshot of the deployed chain was written"
        await asyncio.sleep(0.1)


async def test_the_demo_survives_kill_9_and_starts_over_from_an_unreadable_state(tmp_path: Path) -> None:
    state_dir = tmp_path / ".megarouter"
    state = state_dir / "anvil-state.json"
    async with _demo(state_dir):
        await _wait_for_snapshot(state)
    deployed = json.loads((state_dir / "devnet.json").read_text())["usdc"]

    async with _demo(state_dir) as printed:
        assert not [line for line in printed if line.startswith("note:")], printed
    assert json.loads((state_dir / "devnet.json").read_text())["usdc"] == deployed
    assert not list(state_dir.glob("set-aside-*"))

    state.write_bytes(state.read_bytes()[:100])  # As a crash mid-write by Anvil's own --state used to.
    async with _demo(state_dir) as printed:
        notes = [line for line in printed if line.startswith("note:")]
        await _wait_for_snapshot(state)
    assert len(notes) == 1, printed
    assert "unreadable" in notes[0]
    (aside,) = state_dir.glob("set-aside-*")
    assert {"anvil-state.json", "devnet.json", "megarouter.db"} <= {path.name for path in aside.iterdir()}
    assert state_file_problem(state) is None
