"""Short `megarouter` commands load only what they run: the parser needs argparse, `ledger check` SQLAlchemy
and the ledger. Speed itself is measured by scripts/bench/cli_startup.py, never asserted here.

Method: each command runs as a real `python -X importtime -m proxy ...` process with this checkout first on
PYTHONPATH; the modules it imported are read from the importtime lines on stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ledger import AccountType, Ledger, create_ledger_engine, migrate

REPO_ROOT = Path(__file__).resolve().parents[4]
COMMAND_TIMEOUT_S = 60.0
CHECK_OK = "ledger check OK: every invariant holds\n"
# Heavy, and needed by no command below: the chain, the web stack, the payment protocol, the catalog,
# the router's model, Alembic. `ledger check` on a migrated database does not migrate, so no Alembic either.
NEVER_NEEDED = (
    "web3",
    "eth_account",
    "aiohttp",
    "x402",
    "numpy",
    "alembic",
    "proxy.app",
    "proxy.api",
    "proxy.catalog",
    "proxy.chain",
    "proxy.routing",
    "proxy.serving",
    "proxy.settings",
)
# The parser additionally needs no database and no models.
NOT_FOR_THE_PARSER = (*NEVER_NEEDED, "sqlalchemy", "pydantic", "sqlmodel", "ledger.engine", "ledger.store")


def _imported_by(*argv: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "proxy", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    # "import time: <self us> | <cumulative us> | <indented module name>"
    modules = {
        line.split("|")[2].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    assert "proxy.cli" in modules
    return done, modules


def _loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(f"{p}.") for p in packages))


def test_help_builds_the_parser_from_light_modules_only(tmp_path: Path) -> None:
    commands = (["--help"], ["usage", "--help"], ["ledger", "reconcile", "--help"], ["route-eval", "--help"])
    for argv in commands:
        done, modules = _imported_by(*argv, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.startswith("usage: megarouter")
        assert _loaded(modules, NOT_FOR_THE_PARSER) == [], argv


async def test_ledger_check_loads_the_ledger_and_sqlalchemy_but_not_the_proxy(tmp_path: Path) -> None:
    state_dir = tmp_path / ".megarouter"
    state_dir.mkdir()
    engine = create_ledger_engine(f"sqlite+aiosqlite:///{state_dir / 'megarouter.db'}")
    try:
        await migrate(engine)
        ledger = Ledger(engine)
        await ledger.ensure_account("equity:external", type=AccountType.EQUITY, unit="nano_usd")
        await ledger.ensure_account("credit:account:alice", type=AccountType.LIABILITY, unit="nano_usd")
        await ledger.post(
            idempotency_key="d",
            code="deposit",
            postings=[("equity:external", 1_000), ("credit:account:alice", -1_000)],
        )
    finally:
        await engine.dispose()
    # No --database-url: the demo's database, relative to the working directory, as an operator runs it.
    done, modules = _imported_by("ledger", "check", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, CHECK_OK), done.stderr[-2000:]
    assert {"sqlalchemy", "ledger.check"} <= modules
    assert _loaded(modules, NEVER_NEEDED) == []


def test_ledger_check_still_migrates_a_database_without_the_ledger_schema(tmp_path: Path) -> None:
    (tmp_path / ".megarouter").mkdir()
    (tmp_path / ".megarouter" / "megarouter.db").touch()
    done, modules = _imported_by("ledger", "check", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, CHECK_OK), done.stderr[-2000:]
    assert "alembic" in modules


def test_usage_defaults_to_the_demo_database_when_it_runs(tmp_path: Path) -> None:
    done, _ = _imported_by("usage", cwd=tmp_path)
    assert done.returncode == 2
    assert "usage: no database at .megarouter/megarouter.db" in done.stderr
