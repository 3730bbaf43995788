"""The `megarouter` command: serve, demo, pay (an agent), ledger, config check, route-eval.

Only this module and `proxy/__main__.py` read the process environment and command line.
"""

# The docstring above is `megarouter --help`'s description. Start-up is kept short: building the parser
# imports only argparse and the light modules that declare arguments (ledger/cli.py, reconcile_args.py,
# route_eval.py, usage.py); each handler imports its heavy dependencies (web3, SQLAlchemy, pydantic,
# aiohttp, the catalog) when it runs. tests/unit/cli/test_cli_imports.py checks that `--help` and
# `ledger check` load none of what they do not use.

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ledger.cli import add_ledger_commands
from proxy.cli.org import add_org_command
from proxy.cli.reconcile_args import add_reconcile_command
from proxy.cli.route_eval import add_route_eval_command
from proxy.cli.usage import add_usage_command
from proxy.cli.wallet_args import add_wallet_commands

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="megarouter", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API server from a config file")
    serve.add_argument("--config", type=Path, default=None, help="TOML config (default: $MEGAROUTER_CONFIG)")

    demo = commands.add_parser(
        "demo", help="Anvil + test tokens + simulated providers + MegaRouter, all local"
    )
    demo.add_argument("--port", type=int, default=8402)
    demo.add_argument("--state-dir", type=Path, default=Path(".megarouter"))

    pay = commands.add_parser("pay", help="act as an x402 agent: pay for one chat completion and print it")
    pay.add_argument("prompt")
    pay.add_argument("--api", default="http://127.0.0.1:8402", help="MegaRouter base URL")
    pay.add_argument("--model", default="auto")
    pay.add_argument(
        "--asset", default=None, help="token symbol or address to pay with (default: first offered)"
    )
    pay.add_argument("--max-tokens", type=int, default=None)
    pay.add_argument(
        "--scheme",
        choices=("exact", "upto"),
        default="exact",
        help="exact: pay the quote (the rest stays credit); upto: the quote is a maximum, the cost is paid",
    )
    pay.add_argument("--private-key", default=None, help="agent key (default: $MEGAROUTER_AGENT_KEY)")
    pay.add_argument(
        "--sign-in",
        action="store_true",
        help="sign in with x402's sign-in-with-x and spend the wallet's credit first (pay only a shortfall)",
    )

    config = commands.add_parser("config", help="configuration tools")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    check = config_commands.add_parser("check", help="validate a config file and say what is wrong")
    check.add_argument("--config", type=Path, default=None)
    config_commands.add_parser("example", help="print a documented example config file")

    ledger = commands.add_parser("ledger", help="inspect and check the ledger")
    ledger_commands = ledger.add_subparsers(required=True)
    add_ledger_commands(ledger_commands)
    add_reconcile_command(ledger_commands)

    add_route_eval_command(commands)
    add_usage_command(commands)
    add_wallet_commands(commands)
    add_org_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Assertions guard money invariants; refuse to run with them stripped.
    if sys.flags.optimize:
        print(
            "megarouter: refusing to run under python -O (assertions guard money invariants)", file=sys.stderr
        )
        return 2
    args = _parser().parse_args(argv)
    import asyncio  # Here, not at the top: `--help` and argument errors exit above without needing it.

    if args.command == "serve":
        from proxy.app.serve import run_server

        return asyncio.run(run_server(args.config, os.environ))
    if args.command == "demo":
        from proxy.devnet.demo import run_demo

        return asyncio.run(run_demo(state_dir=args.state_dir, port=args.port, environ=os.environ))
    if args.command == "pay":
        from proxy.cli.pay import run_pay_command

        return asyncio.run(run_pay_command(args, os.environ))
    if args.command in ("credit", "withdraw"):
        from proxy.cli.wallet import run_credit_command, run_withdraw_command

        run = run_credit_command if args.command == "credit" else run_withdraw_command
        return asyncio.run(run(args, os.environ))
    if args.command == "config":
        from proxy.app.config import example_config_text, run_config_check

        if args.config_command == "example":
            print(example_config_text(), end="")
            return 0
        return run_config_check(args.config, os.environ)
    if args.command == "usage":
        from proxy.cli.usage import run_usage_command

        return asyncio.run(run_usage_command(args))
    if args.command == "org":
        from proxy.cli.org import run_org_command

        return asyncio.run(run_org_command(args))
    if args.command == "route-eval":
        from proxy.cli.route_eval import run_route_eval

        return run_route_eval(args)
    if args.command == "ledger" and args.ledger_command == "reconcile":
        from proxy.cli.reconcile import run_reconcile_command

        return asyncio.run(run_reconcile_command(args, environ=os.environ))
    if args.command == "ledger":
        from ledger.cli import run_ledger_command

        return asyncio.run(run_ledger_command(args))
    raise AssertionError(f"unhandled command {args.command}")
