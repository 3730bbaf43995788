"""Anvil starts from the pinned npm package and answers JSON-RPC with our chain id, and its chain state
survives a crash: a state file is always one whole snapshot, and one that is not (empty, cut short) makes
the demo start over with a new chain and database, the old files set aside, instead of refusing to start.

Method: real Anvil processes on free ports, killed with SIGKILL while running; state files written by hand
for the broken cases; the demo's start-up check run on a state directory laid out as the demo leaves it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.devnet.anvil import (
    ANVIL_CHAIN_ID,
    AnvilNode,
    AnvilStateUnreadable,
    run_anvil,
    state_file_problem,
)
from proxy.devnet.demo import set_aside_unusable_chain

# Every wait below is bounded; a snapshot not written within this long is a bug, not a slow machine.
SNAPSHOT_WAIT_S_MAX = 20.0


async def _rpc(rpc_url: str, method: str) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": []}
    async with aiohttp.ClientSession() as session, session.post(rpc_url, json=body) as response:
        return (await response.json())["result"]


def _snapshot_block(path: Path) -> int | None:
    if not path.exists() or state_file_problem(path) is not None:
        return None
    return int(json.loads(path.read_bytes())["block"]["number"], 16)


async def test_anvil_answers_chain_id(anvil: AnvilNode) -> None:
    assert int(await _rpc(anvil.rpc_url, "eth_chainId"), 16) == ANVIL_CHAIN_ID


async def test_a_chain_killed_with_sigkill_comes_back_from_its_snapshot(tmp_path: Path) -> None:
    state = tmp_path / "anvil-state.json"
    async with run_anvil(state_path=state, snapshot_interval_s=0.05) as node:
        for _ in range(3):
            await _rpc(node.rpc_url, "evm_mine")
        deadline_s = time.monotonic() + SNAPSHOT_WAIT_S_MAX
        while _snapshot_block(state) != 3:
            assert time.monotonic() < deadline_s, "no snapshot of block 3 was written"
            await asyncio.sleep(0.05)
        node.process.kill()  # SIGKILL: Anvil gets no chance to write anything on its way out.
        await node.process.wait()
    assert state_file_problem(state) is None
    async with run_anvil(state_path=state) as node:
        assert int(await _rpc(node.rpc_url, "eth_blockNumber"), 16) == 3


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "it is empty or cut short"),
        (b'{"block": {"number": "0x', "it is not complete JSON"),
        (b'{"something": "else"}', "it is not an Anvil state"),
    ],
)
async def test_an_unreadable_state_is_refused_before_anvil_starts(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    state = tmp_path / "anvil-state.json"
    state.write_bytes(content)
    assert state_file_problem(state) == problem
    with pytest.raises(AnvilStateUnreadable, match=problem):
        async with run_anvil(state_path=state):
            pytest.fail("anvil must not start on an unreadable state")


def _demo_state_dir(tmp_path: Path, *, anvil_state: bytes, database_block: int) -> Path:
    """A state directory as the demo leaves it: chain state, deployment record, and a database that has
    booked a settlement mined in `database_block`."""
    state_dir = tmp_path / ".megarouter"
    state_dir.mkdir()
    (state_dir / "anvil-state.json").write_bytes(anvil_state)
    (state_dir / "devnet.json").write_text("{}")
    with sqlite3.connect(state_dir / "megarouter.db") as connection:
        connection.execute("CREATE TABLE x402_settlements (block_number INTEGER)")
        connection.execute("CREATE TABLE chain_watch_cursors (next_block INTEGER)")
        connection.execute("INSERT INTO x402_settlements VALUES (?)", (database_block,))
    return state_dir


def _state_at_block(block: int) -> bytes:
    return json.dumps({"block": {"number": hex(block)}, "accounts": {}}).encode()


@pytest.mark.parametrize(
    ("anvil_state", "reason"),
    [
        (b"", "unreadable: it is empty or cut short"),
        (b'{"block": {"num', "unreadable: it is not complete JSON"),
        (_state_at_block(4), "the chain state ends at block 4 but the database has seen block 7"),
    ],
)
def test_the_demo_sets_an_unusable_chain_aside_with_its_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], anvil_state: bytes, reason: str
) -> None:
    state_dir = _demo_state_dir(tmp_path, anvil_state=anvil_state, database_block=7)
    problem = set_aside_unusable_chain(state_dir)
    assert problem is not None
    assert reason in problem
    assert sorted(path.name for path in state_dir.iterdir() if path.is_file()) == []
    (aside,) = state_dir.glob("set-aside-*")
    assert sorted(path.name for path in aside.iterdir()) == [
        "anvil-state.json",
        "devnet.json",
        "megarouter.db",
    ]
    assert (aside / "anvil-state.json").read_bytes() == anvil_state
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1
    assert reason in printed[0]
    assert str(aside) in printed[0]


def test_the_demo_continues_a_chain_that_covers_its_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = _demo_state_dir(tmp_path, anvil_state=_state_at_block(9), database_block=7)
    assert set_aside_unusable_chain(state_dir) is None
    assert sorted(path.name for path in state_dir.iterdir()) == [
        "anvil-state.json",
        "devnet.json",
        "megarouter.db",
    ]
    assert capsys.readouterr().out == ""
