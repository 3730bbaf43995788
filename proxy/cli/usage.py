"""`megarouter usage`: the usage events behind charges — one request's, one payer's, or the newest."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # SQLAlchemy, pydantic and the settings load in `run_usage_command`, so registering the command is cheap.
    from proxy.serving.usage_log import UsageEvent

__all__ = ["add_usage_command", "run_usage_command"]

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
_COLUMNS = (
    "request_id",
    "outcome",
    "model_id",
    "input",
    "cached",
    "output",
    "est",
    "quote",
    "cost",
    "overage",
)


def add_usage_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    usage = commands.add_parser("usage", help="explain charges: usage events by request, payer or recency")
    usage.add_argument("request_id", nargs="?", default=None, help="one request's events")
    usage.add_argument("--payer", default=None, help="only this wallet address's requests")
    usage.add_argument("--limit", type=int, default=20)
    usage.add_argument("--json", action="store_true")
    # None means proxy.settings.DEFAULT_DATABASE_URL, read when the command runs.
    usage.add_argument("--database-url", default=None)


def _row(event: UsageEvent) -> tuple[str, ...]:
    return (
        event.request_id,
        event.outcome,
        event.model_id or "-",
        str(event.input_tokens),
        str(event.cached_input_tokens),
        str(event.output_tokens),
        "yes" if event.usage_estimated else "",
        f"{event.quote_nano_usd:,}",
        f"{event.cost_nano_usd:,}",
        # Provider usage beyond the quote: the operator's expense, not the caller's charge.
        f"{event.overage_nano_usd:,}" if event.overage_nano_usd else "",
    )


def _table(events: list[UsageEvent]) -> str:
    rows = [_COLUMNS, *(_row(event) for event in events)]
    widths = [max(len(row[index]) for row in rows) for index in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows
    )


async def run_usage_command(args: argparse.Namespace) -> int:
    from ledger import chart
    from ledger.engine import create_ledger_engine, missing_sqlite_file
    from proxy.serving.usage_log import USAGE_EVENTS_LISTED_MAX, UsageLog
    from proxy.settings import DEFAULT_DATABASE_URL

    url: str = DEFAULT_DATABASE_URL if args.database_url is None else args.database_url
    missing = missing_sqlite_file(url)
    if missing is not None:
        print(f"usage: no database at {missing} (run the demo, or pass --database-url)", file=sys.stderr)
        return EXIT_USAGE
    if not 1 <= args.limit <= USAGE_EVENTS_LISTED_MAX:
        print(f"usage: --limit must be 1..{USAGE_EVENTS_LISTED_MAX}", file=sys.stderr)
        return EXIT_USAGE
    engine = create_ledger_engine(url)
    try:
        log = UsageLog(engine)
        if args.request_id is not None:
            events = await log.for_request(args.request_id)
        else:
            payer = chart.credit_wallet(args.payer) if args.payer else None
            events = await log.recent(payer_account=payer, limit=args.limit)
    finally:
        await engine.dispose()
    if args.json:
        print(json.dumps([event.model_dump(mode="json") for event in events], indent=2))
    else:
        print(_table(events) if events else "no usage events")
    return EXIT_OK if events or args.request_id is None else EXIT_NOT_FOUND
