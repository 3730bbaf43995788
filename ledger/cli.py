"""Command-line pieces of `megarouter ledger ...`: balances, check, statement, tx, holds, trial-balance.

The lead wires them in with `add_ledger_commands(ledger_subparsers)` and, for a parsed namespace,
`await run_ledger_command(args)` (returns the exit code). Every command takes `--database-url` (default: the
demo database `sqlite+aiosqlite:///.megarouter/megarouter.db`, relative to the working directory) and
`--json`. `check` exits 1 and lists what is wrong when an invariant is broken. Runnable alone as
`python -m ledger.cli ...`.

Building the parser imports only argparse: SQLAlchemy and the store load in `run_ledger_command`, Alembic
only when a migration is due (ledger/schema_version.py), so short commands load only what they run.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ledger.reconcile import Break, ReconcileRun
    from ledger.store import Ledger
    from ledger.types import Balance, Hold, LedgerTransaction

__all__ = [
    "DEFAULT_DATABASE_URL",
    "add_ledger_commands",
    "blank_if_none",
    "main",
    "run_ledger_command",
    "text_table",
]

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///.megarouter/megarouter.db"
EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
COMMAND_DEST = "ledger_command"


def add_ledger_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ledger commands on an argparse subparsers object (e.g. the one under `ledger`)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help=f"SQLAlchemy async URL (default: {DEFAULT_DATABASE_URL}, relative to the working directory)",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(name, parents=[common], help=help_text, description=help_text)
        parser.set_defaults(**{COMMAND_DEST: name})
        return parser

    add("balances", "cached balance of every account (posted, pending holds, available)").add_argument(
        "--prefix", default="", help="only accounts whose name starts with this"
    )
    add("check", "verify the ledger's invariants; exits 1 and lists the problems when one is broken")
    statement = add("statement", "an account's entries with the running posted balance")
    statement.add_argument("account")
    statement.add_argument("--limit", type=int, default=100)
    add("tx", "one transaction, by id, external reference or idempotency key").add_argument("ref")
    holds = add("holds", "open holds (pending transfers), oldest first")
    holds.add_argument("--account", default=None)
    add("trial-balance", "debits and credits per account; per unit the totals must be equal")
    add("expire", "expire every hold whose timeout has passed (the sweeper, run once)")
    runs = add("reconcile-runs", "stored reconciliation runs, newest first; with --run ID, that run's breaks")
    runs.add_argument("--run", type=int, default=None, help="show the breaks of this run")


async def run_ledger_command(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    """Run the parsed ledger command and return its exit code."""
    from ledger.engine import create_ledger_engine, migrate, missing_sqlite_file
    from ledger.errors import LedgerError
    from ledger.schema_version import schema_is_current
    from ledger.store import Ledger

    stream = out if out is not None else sys.stdout
    errors = out if out is not None else sys.stderr
    command: str = getattr(args, COMMAND_DEST)
    url: str = args.database_url
    missing = missing_sqlite_file(url)
    if missing is not None:
        print(
            f"ledger: no database at {missing} (run the proxy or demo first, or pass --database-url)",
            file=stream,
        )
        return EXIT_USAGE
    engine = create_ledger_engine(url)
    try:
        # Migrating a current schema changes nothing but costs an Alembic import, most of a short command.
        if not await schema_is_current(engine):
            await migrate(engine)
        ledger = Ledger(engine)
        return await _dispatch(command, args, ledger, stream)
    except LedgerError as error:
        print(f"ledger: {error.code}: {error}", file=errors)
        return EXIT_PROBLEMS
    finally:
        await engine.dispose()


async def _dispatch(command: str, args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    as_json: bool = args.json
    if command == "balances":
        balances = [b for b in await ledger.balances() if b.account.startswith(args.prefix)]
        _emit(out, as_json, balances, _balance_table)
    elif command == "check":
        return await _check(ledger, as_json, out)
    elif command == "statement":
        await _statement(ledger, args, out)
    elif command == "tx":
        transaction = await _find_transaction(ledger, args.ref)
        if transaction is None:
            print(f"ledger: no transaction with id, external_ref or idempotency key {args.ref!r}", file=out)
            return EXIT_PROBLEMS
        _emit(out, as_json, [transaction], _transaction_table)
    elif command == "holds":
        _emit(out, as_json, await ledger.open_holds(args.account), _hold_table)
    elif command == "trial-balance":
        return await _trial_balance(ledger, as_json, out)
    elif command == "reconcile-runs":
        from ledger.reconcile import list_runs, run_breaks

        if args.run is None:
            _emit(out, as_json, await list_runs(ledger.engine), _runs_table)
        else:
            _emit(out, as_json, await run_breaks(ledger.engine, args.run), _breaks_table)
    elif command == "expire":
        expired = await ledger.expire_due()
        _emit(out, as_json, expired, _hold_table)
    else:
        raise AssertionError(f"unknown ledger command {command}")
    return EXIT_OK


async def _check(ledger: Ledger, as_json: bool, out: TextIO) -> int:
    from ledger.check import check_ledger

    problems = await check_ledger(ledger.engine)
    if as_json:
        _print_json(out, {"ok": not problems, "problems": [p.model_dump() for p in problems]})
    elif problems:
        print(f"ledger check FAILED: {len(problems)} problem(s)", file=out)
        rows = [[p.kind, p.subject, p.detail] for p in problems]
        print(text_table(["kind", "subject", "detail"], rows), file=out)
    else:
        print("ledger check OK: every invariant holds", file=out)
    return EXIT_PROBLEMS if problems else EXIT_OK


async def _statement(ledger: Ledger, args: argparse.Namespace, out: TextIO) -> None:
    statement = await ledger.statement(args.account, limit=args.limit)
    if args.json:
        _print_json(out, statement.model_dump(mode="json"))
        return
    rows = [
        [str(line.transaction_id), line.code, line.external_ref or "", line.amount, line.balance_after]
        for line in statement.lines
    ]
    print(f"{statement.account} ({statement.unit}, debit > 0)", file=out)
    print(text_table(["tx", "code", "external_ref", "amount", "balance_after"], rows), file=out)


async def _trial_balance(ledger: Ledger, as_json: bool, out: TextIO) -> int:
    trial = await ledger.trial_balance()
    if as_json:
        _print_json(out, trial.model_dump(mode="json") | {"balanced": trial.balanced})
    else:
        rows: list[list[Any]] = [
            [r.account, r.type.value, r.unit, r.debits_posted, r.credits_posted, r.balance]
            for r in trial.rows
        ]
        for unit in sorted(trial.debits_by_unit):
            rows.append(["TOTAL", "", unit, trial.debits_by_unit[unit], trial.credits_by_unit[unit], ""])
        print(text_table(["account", "type", "unit", "debits", "credits", "balance"], rows), file=out)
        print("balanced" if trial.balanced else "NOT BALANCED", file=out)
    return EXIT_OK if trial.balanced else EXIT_PROBLEMS


async def _find_transaction(ledger: Ledger, ref: str) -> LedgerTransaction | None:
    if ref.isascii() and ref.isdigit() and len(ref) <= 18:
        found = await ledger.get_transaction(int(ref))
        if found is not None:
            return found
    return await ledger.transaction_by_external_ref(ref) or await ledger.transaction_by_idempotency_key(ref)


def _emit(out: TextIO, as_json: bool, items: Sequence[BaseModel], table: Callable[[Any], str]) -> None:
    if as_json:
        _print_json(out, [item.model_dump(mode="json") for item in items])
    else:
        print(table(items), file=out)


def _print_json(out: TextIO, value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True), file=out)


def _balance_table(balances: Sequence[Balance]) -> str:
    rows = [[b.account, b.type.value, b.unit, b.posted, b.pending, b.available] for b in balances]
    return text_table(["account", "type", "unit", "posted", "pending", "available"], rows)


def _hold_table(holds: Sequence[Hold]) -> str:
    rows = [
        [str(h.id), h.debit_account, h.credit_account, h.amount, h.state.value, str(h.expires_at_unix_ms)]
        for h in holds
    ]
    headers = ["hold", "debit_account", "credit_account", "amount", "state", "expires_at_unix_ms"]
    return text_table(headers, rows)


def _runs_table(runs: Sequence[ReconcileRun]) -> str:
    rows = [
        [str(r.id), str(r.started_at_unix_ms), r.movements_count, r.matched_count, r.breaks_count]
        for r in runs
    ]
    return text_table(["run", "started_at_unix_ms", "movements", "matched", "breaks"], rows)


def _breaks_table(breaks: Sequence[Break]) -> str:
    rows = [
        [
            b.kind.value,
            b.external_ref or "",
            b.account or "",
            blank_if_none(b.ledger_amount_nano_usd),
            blank_if_none(b.external_amount_nano_usd),
            b.detail,
        ]
        for b in breaks
    ]
    headers = ["kind", "external_ref", "account", "ledger_nano_usd", "external_nano_usd", "detail"]
    return text_table(headers, rows)


def blank_if_none(value: int | None) -> int | str:
    """A table cell for an optional amount: empty rather than "None"."""
    return "" if value is None else value


def _transaction_table(transactions: Sequence[LedgerTransaction]) -> str:
    lines = []
    for tx in transactions:
        lines.append(f"transaction {tx.id}  code={tx.code}  key={tx.idempotency_key}")
        lines.append(
            f"external_ref={tx.external_ref or '-'}  hold={tx.hold_id or '-'}  metadata={tx.metadata}"
        )
        rows = [
            [p.account, p.unit, p.amount if p.amount > 0 else "", -p.amount if p.amount < 0 else ""]
            for p in tx.postings
        ]
        lines.append(text_table(["account", "unit", "debit", "credit"], rows))
    return "\n".join(lines)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, mark_empty: bool = True) -> str:
    """A plain text table; integers are right-aligned with thousands separators. With `mark_empty`, a
    table without rows says "(none)" under its header. Shared with proxy/cli/reconcile.py."""
    cells = [[f"{v:,}" if isinstance(v, int) else str(v) for v in row] for row in rows]
    numeric = [any(isinstance(row[i], int) for row in rows) for i in range(len(headers))]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out = [line(headers), line(["-" * w for w in widths]), *(line(c) for c in cells)]
    if mark_empty and not rows:
        out.append("(none)")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledger.cli", description="MegaRouter ledger tools")
    add_ledger_commands(parser.add_subparsers(dest="_ledger_subcommand", required=True))
    args = parser.parse_args(argv)
    import asyncio  # Here, not at the top: building the parser (`megarouter --help`) does not need it.

    return asyncio.run(run_ledger_command(args))


if __name__ == "__main__":
    raise SystemExit(main())
