"""`megarouter ledger reconcile`: tie the ledger to the chain for the settlement wallet, and say what breaks.

Which database and chain: with `--config PATH`, the operator's TOML config (`proxy.app.config.load_settings`;
the settlement wallet is the address of MEGAROUTER_SETTLEMENT_PRIVATE_KEY). Without it, what `./scripts/run`
(the demo) uses, relative to the working directory: `.megarouter/megarouter.db` and `.megarouter/devnet.json`
(chain id and token addresses; `rpc_url`, `settlement_wallet` and `chain_watch_confirmations` when the demo
records them, else Anvil's http://127.0.0.1:8545, Anvil account 0 and the Settings default).
`--database-url` and `--rpc-url` override either.

Range: `--from-block` (default: after the last clean run of this wallet, else 0) to `--to-block` (default:
the head). Balances are tied out only when the range ends at the head. The gas of every transaction the
settlement wallet sent in the range (wei, against `expense:gas:<network>`) is matched to its booking, so
native coin spent and never booked (a reverted settlement, a transaction sent with the key by hand) is a
break too.

Exit codes: 0 no breaks; 1 breaks found (listed); 2 usage or configuration error (nothing was run);
3 the chain or the database could not be reached (nothing was stored).
"""

from __future__ import annotations

import argparse
from pathlib import Path

# Only argparse and the ledger CLI's (light) constants: building `megarouter`'s parser must not load web3,
# pydantic or SQLAlchemy. The handler lives in proxy/cli/reconcile.py and loads them when it runs.
from ledger.cli import COMMAND_DEST

__all__ = ["RECONCILE_COMMAND", "add_reconcile_command"]

RECONCILE_COMMAND = "reconcile"


def add_reconcile_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `reconcile` on the `ledger` subparsers (next to the ledger's own commands)."""
    help_text = "tie the ledger to the chain (movements and balances of the settlement wallet)"
    parser = subparsers.add_parser(
        RECONCILE_COMMAND,
        help=help_text,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="operator TOML config (default: the demo's)"
    )
    parser.add_argument("--from-block", type=int, default=None, help="first block (default: resume)")
    parser.add_argument("--to-block", type=int, default=None, help="last block (default: the head)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--database-url", default=None, help="SQLAlchemy async URL (overrides the config)")
    parser.add_argument("--rpc-url", default=None, help="chain JSON-RPC URL (overrides the config)")
    parser.set_defaults(**{COMMAND_DEST: RECONCILE_COMMAND})
