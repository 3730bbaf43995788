"""`megarouter org …`: an operator's view of organizations, straight from the database.

`org create --name N --owner 0x…` makes an org whose owner is that wallet (the owner then administers it
through the API with its own wallet key); `org list`; `org show ORG` (units, members, keys, budgets with the
current period's spend, rate limits, credit); `org audit ORG`. `--json` prints machine-readable output.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

__all__ = ["add_org_command", "run_org_command"]

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def add_org_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    org = commands.add_parser("org", help="organizations: create, list, show, audit")
    org.add_argument("--database-url", default=None, help="default: the server's default database")
    org.add_argument("--json", action="store_true")
    sub = org.add_subparsers(dest="org_command", required=True)
    create = sub.add_parser("create", help="a new organization owned by a wallet")
    create.add_argument("--name", required=True)
    create.add_argument("--owner", required=True, help="the owner's wallet address")
    sub.add_parser("list", help="every organization")
    show = sub.add_parser("show", help="one organization in full")
    show.add_argument("org", type=int)
    audit = sub.add_parser("audit", help="an organization's audit log, newest first")
    audit.add_argument("org", type=int)
    audit.add_argument("--limit", type=int, default=50)


async def run_org_command(args: argparse.Namespace) -> int:
    from ledger import AccountNotFound, Ledger
    from ledger.engine import create_ledger_engine, missing_sqlite_file
    from proxy.errors import NotFound
    from proxy.governance.budgets import BudgetLedger, StoredBudgetAlerts
    from proxy.governance.store import AUDIT_LISTED_MAX, Organizations, rate_limit_view
    from proxy.settings import DEFAULT_DATABASE_URL

    url: str = DEFAULT_DATABASE_URL if args.database_url is None else args.database_url
    missing = missing_sqlite_file(url)
    if missing is not None:
        print(
            f"org: no database at {missing} (start the server once, or pass --database-url)", file=sys.stderr
        )
        return EXIT_USAGE
    if args.org_command == "create" and not _ADDRESS.match(args.owner):
        print("org: --owner must be a 0x-prefixed 40-hex-digit address", file=sys.stderr)
        return EXIT_USAGE
    if args.org_command == "audit" and not 1 <= args.limit <= AUDIT_LISTED_MAX:
        print(f"org: --limit must be 1..{AUDIT_LISTED_MAX}", file=sys.stderr)
        return EXIT_USAGE
    engine = create_ledger_engine(url)
    orgs = Organizations(engine)
    try:
        if args.org_command == "create":
            document: Any = (await orgs.create_org(name=args.name, owner_wallet=args.owner)).model_dump(
                mode="json"
            )
        elif args.org_command == "list":
            document = [org.model_dump(mode="json") for org in await orgs.all_orgs()]
        elif args.org_command == "audit":
            await orgs.get_org(args.org)
            document = [
                entry.model_dump(mode="json") for entry in await orgs.audit(args.org, limit=args.limit)
            ]
        else:
            ledger = Ledger(engine)
            budgets = BudgetLedger(ledger, alerts=StoredBudgetAlerts(engine))
            org = await orgs.get_org(args.org)
            everything = await orgs.all_unit_ids(org.id)
            try:
                credit = (await ledger.balance(org.credit_account)).model_dump(mode="json")
            except AccountNotFound:
                credit = None
            document = {
                "org": org.model_dump(mode="json"),
                "credit": credit,
                "units": [u.model_dump(mode="json") for u in await orgs.list_units(org.id, everything)],
                "members": [m.model_dump(mode="json") for m in await orgs.list_members(org.id, everything)],
                "keys": [k.model_dump(mode="json") for k in await orgs.list_keys(org.id, everything)],
                "budgets": [
                    {**b.model_dump(mode="json"), "spent_nano_usd": (await budgets.spend(b)).spent_nano_usd}
                    for b in await orgs.list_budgets(org.id, everything)
                ],
                "rate_limits": [
                    rate_limit_view(limit).model_dump(mode="json")
                    for limit in await orgs.list_rate_limits(org.id)
                ],
            }
    except NotFound as error:
        print(f"org: {error.message}", file=sys.stderr)
        return EXIT_NOT_FOUND
    finally:
        await engine.dispose()
    print(json.dumps(document, indent=2) if args.json else _text(args.org_command, document))
    return EXIT_OK


def _text(command: str, document: Any) -> str:
    if command in ("create", "list"):
        orgs = [document] if command == "create" else document
        return (
            "\n".join(f"org {o['id']}  {o['name']}  credit account {o['credit_account']}" for o in orgs)
            or "no orgs"
        )
    if command == "audit":
        return (
            "\n".join(
                f"{e['id']}  {e['at']}  {e['actor']}  {e['action']}  {e['target_kind']} {e['target_id']}"
                for e in document
            )
            or "no audit entries"
        )
    org, credit = document["org"], document["credit"]
    lines = [
        f"org {org['id']}  {org['name']}  credit {credit['available'] if credit else 0} nano-USD available"
    ]
    lines += [
        f"  unit {u['id']}  {u['kind']}  {u['name']}  parent {u['parent_id']}" for u in document["units"]
    ]
    lines += [
        f"  member {m['id']}  {m['wallet']}  {m['role']} on unit {m['unit_id']}" for m in document["members"]
    ]
    lines += [
        f"  key {k['id']}  {k['prefix']}…  {k['name']}  unit {k['unit_id']}"
        + ("  revoked" if k["revoked_at"] else "")
        for k in document["keys"]
    ]
    lines += [
        f"  budget {b['id']}  {b['scope_kind']} {b['scope_id']}  {b['amount_nano_usd']} nano-USD "
        f"per {b['period']} ({b['mode']}), spent {b['spent_nano_usd']}"
        for b in document["budgets"]
    ]
    lines += [
        f"  rate limit {r['id']}  {r['scope_kind']} {r['scope_id']}  {r['requests_per_minute']} req/min, "
        f"{r['tokens_per_minute']} tokens/min"
        for r in document["rate_limits"]
    ]
    return "\n".join(lines)
