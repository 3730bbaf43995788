"""An honest history made by the real app (x402 payments, a watcher-booked transfer, a withdrawal) reconciles
clean; `megarouter ledger reconcile` reports it with the documented exit codes, and reports a planted break.

Method: `create_app` against the module's private Anvil with a new settlement wallet (so its balance is this
test's alone) and the simulated providers; SQLite and PostgreSQL. The CLI runs in-process on a temporary
project root holding the `.megarouter/devnet.json` it reads.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy.api.app_keys import DB_ENGINE
from proxy.cli.reconcile import (
    EXIT_BREAKS,
    EXIT_CLEAN,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    add_reconcile_command,
    run_reconcile_command,
)
from proxy.devnet.simulator import Simulators
from tests.e2e.accounts.helpers import pay_for_credit, signed_withdrawal
from tests.integration.proxy.chain.reconcile.conftest import Books, kinds, recon_router
from tests.integration.proxy.chain.watcher.conftest import PrivateChain

pytestmark = pytest.mark.anvil


def _cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_reconcile_command(parser.add_subparsers(required=True))
    return parser.parse_args(["reconcile", *argv])


async def _cli(root: Path, *argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await run_reconcile_command(_cli_args(*argv), environ={}, project_root=root, out=out, err=err)
    return code, out.getvalue() + err.getvalue()


async def test_honest_history_is_clean_and_the_cli_says_so(
    aiohttp_client: Any,
    recon_chain: PrivateChain,
    wallet: LocalAccount,
    simulator: Simulators,
    database_url: str,
    tmp_path: Path,
) -> None:
    router = await recon_router(aiohttp_client, recon_chain, wallet, simulator, database_url)
    try:
        start_block = await recon_chain.w3.eth.block_number + 1
        await pay_for_credit(router, router.payers[0], max_tokens=32)
        await pay_for_credit(router, router.payers[1], max_tokens=32)
        engine: AsyncEngine = router.app[DB_ENGINE]
        books = Books(chain=recon_chain, wallet=wallet, engine=engine, start_block=start_block)
        await books.pay_in(3, 5_000)
        assert (await books.watch()).booked == 1
        withdrawal = signed_withdrawal(router, router.payers[2], amount_atomic=2_000)
        response = await router.client.post("/v1/credits/withdraw", json=withdrawal)
        assert response.status == 200, await response.text()

        report = await books.reconcile()
        assert report.clean, report.breaks
        # Two x402 settlements and one plain transfer in, one withdrawal out, each booked once; and the gas
        # of the three transactions the wallet sent (two settlements, one withdrawal), each booked once.
        assert (report.movements_count, report.matched_count) == (4 + 3, 4 + 3)
        assert (report.receipts.looked_up, report.receipts.reverted) == (3, ())
        assert (report.gas.transactions, report.gas.reverted, report.gas.pending) == (3, 0, 0)
        assert report.gas.chain_gas_wei == report.gas.booked_gas_wei > 0
        assert all(b.chain_nano_usd == b.ledger_nano_usd for b in report.balances)

        state = tmp_path / ".megarouter"
        state.mkdir()
        record = {
            "chain_id": recon_chain.node.chain_id,
            "usdc": recon_chain.tokens.usdc.address,
            "usdt": recon_chain.tokens.usdt.address,
            "settlement_wallet": wallet.address,
            "chain_watch_confirmations": 0,
        }
        (state / "devnet.json").write_text(json.dumps(record))
        rpc = recon_chain.node.rpc_url
        code, output = await _cli(tmp_path, "--database-url", database_url, "--rpc-url", rpc, "--json")
        assert code == EXIT_CLEAN, output
        document = json.loads(output)
        assert (document["clean"], document["from_block"]) == (True, report.to_block + 1)

        # A transfer nobody books: the CLI exits 1 and names it (re-scanning from block 0).
        await books.pay_in(4, 900)
        code, output = await _cli(tmp_path, "--database-url", database_url, "--rpc-url", rpc)
        assert code == EXIT_BREAKS, output
        assert "missing_in_ledger" in output
        assert "BREAKS: 2 (balance_mismatch 1, missing_in_ledger 1)" in output
        code, output = await _cli(
            tmp_path, "--database-url", database_url, "--rpc-url", rpc, "--from-block", "0", "--json"
        )
        assert code == EXIT_BREAKS
        assert kinds(await books.reconcile(from_block=0)) == ["balance_mismatch", "missing_in_ledger"]
        assert json.loads(output)["breaks_by_kind"] == {"balance_mismatch": 1, "missing_in_ledger": 1}
    finally:
        await router.w3.provider.disconnect()


async def test_cli_usage_and_unavailable_exit_codes(recon_chain: PrivateChain, tmp_path: Path) -> None:
    rpc = recon_chain.node.rpc_url
    code, output = await _cli(tmp_path)
    assert (code, "devnet.json" in output) == (EXIT_USAGE, True)
    code, output = await _cli(tmp_path, "--from-block", "9", "--to-block", "3")
    assert (code, "--from-block 9 is after --to-block 3" in output) == (EXIT_USAGE, True)
    code, output = await _cli(tmp_path, "--config", str(tmp_path / "missing.toml"))
    assert (code, "no such file" in output) == (EXIT_USAGE, True)
    state = tmp_path / ".megarouter"
    state.mkdir()
    record = {
        "chain_id": 31337,
        "usdc": recon_chain.tokens.usdc.address,
        "usdt": recon_chain.tokens.usdt.address,
    }
    (state / "devnet.json").write_text(json.dumps(record))
    code, output = await _cli(tmp_path, "--rpc-url", rpc)
    assert (code, "no database at" in output) == (EXIT_USAGE, True)
    (tmp_path / "ledger.db").touch()  # an empty file is an empty SQLite database
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    head = await recon_chain.w3.eth.block_number
    code, output = await _cli(
        tmp_path, "--rpc-url", rpc, "--database-url", database_url, "--to-block", str(head + 1_000)
    )
    assert (code, "beyond the chain head" in output) == (EXIT_USAGE, True)
    code, output = await _cli(tmp_path, "--rpc-url", "http://127.0.0.1:9", "--database-url", database_url)
    assert (code, "chain unavailable" in output) == (EXIT_UNAVAILABLE, True)
