"""Arguments of `megarouter credit` and `megarouter withdraw` (argparse only: `--help` stays light)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_wallet_commands"]


def _wallet_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", default="http://127.0.0.1:8402", help="MegaRouter base URL")
    parser.add_argument(
        "--key-file", type=Path, default=None, help="file holding the wallet's private key (0x hex)"
    )


def add_wallet_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    credit = commands.add_parser(
        "credit", help="show a wallet's credit (signed in with sign-in-with-x; key from env or file)"
    )
    _wallet_arguments(credit)
    withdraw = commands.add_parser("withdraw", help="send a wallet's credit back to it on chain (signed)")
    _wallet_arguments(withdraw)
    amount = withdraw.add_mutually_exclusive_group(required=True)
    amount.add_argument("--amount", default=None, help="USD to withdraw, e.g. 0.25")
    amount.add_argument("--all", action="store_true", help="every whole token unit of the available credit")
    withdraw.add_argument(
        "--asset", default=None, help="token symbol or address to receive (default: the server's first)"
    )
