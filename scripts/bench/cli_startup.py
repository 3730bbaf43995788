#!/usr/bin/env python3
"""Wall time of short `megarouter` commands, each a cold start in a fresh process, against `python -c pass`.

Commands: `--help`, `usage --help`, and `ledger check` on a SQLite ledger in a demo-like state directory
(`.megarouter/megarouter.db` under a temporary working directory, migrated, with a few accounts, deposits
and a hold), run with no `--database-url` as an operator would after the demo. Each command runs
`--rounds` times (default 5) as `python -m proxy ...` with this checkout first on PYTHONPATH; the best
round is reported (the least disturbed by other work on the machine), wall and CPU time in milliseconds and
as ratios to the interpreter's own start-up measured in the same run.

Bytecode: an installed package runs from cached .pyc files, so by default the commands may write them, to
a private PYTHONPYCACHEPREFIX under the temporary directory (the first round compiles, later rounds reuse;
the checkout stays clean). `--no-bytecode-cache` keeps the environment's setting instead (with
PYTHONDONTWRITEBYTECODE=1 every round compiles this checkout's modules again).

Speed is measured here rather than asserted in tests (timings are noisy on shared machines); the tests
check instead which modules a command imports (tests/unit/cli/test_cli_imports.py).
Usage: .venv/bin/python scripts/bench/cli_startup.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ROUNDS_MAX = 50
COMMAND_TIMEOUT_S = 60.0
DEPOSIT_COUNT = 5


async def seed_demo_ledger(state_dir: Path) -> None:
    """A migrated ledger with a customer, a provider payable, a few deposits and one open hold."""
    from ledger import AccountFlags, AccountType, Ledger, create_ledger_engine, migrate

    engine = create_ledger_engine(f"sqlite+aiosqlite:///{state_dir / 'megarouter.db'}")
    try:
        await migrate(engine)
        ledger = Ledger(engine)
        await ledger.ensure_account("equity:external", type=AccountType.EQUITY, unit="nano_usd")
        await ledger.ensure_account(
            "credit:account:alice",
            type=AccountType.LIABILITY,
            unit="nano_usd",
            flags=AccountFlags.MUST_NOT_GO_NEGATIVE,
        )
        await ledger.ensure_account("provider_payable:bench", type=AccountType.LIABILITY, unit="nano_usd")
        for index in range(DEPOSIT_COUNT):
            await ledger.post(
                idempotency_key=f"deposit-{index}",
                code="deposit",
                postings=[("equity:external", 1_000_000), ("credit:account:alice", -1_000_000)],
                external_ref=f"chain:0xbench:{index}",
            )
        await ledger.hold(
            idempotency_key="hold-0",
            debit_account="credit:account:alice",
            credit_account="provider_payable:bench",
            amount=300_000,
            timeout_s=3_600,
        )
    finally:
        await engine.dispose()


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def best_ms(argv: list[str], *, cwd: Path, env: dict[str, str], rounds: int) -> tuple[float, float]:
    """Wall and CPU (user + system) time of the fastest of `rounds` runs of `argv`, each a new process.

    CPU time is shown too because wall time on a busy machine includes waiting for a core. A failing
    command stops the benchmark.
    """
    assert 1 <= rounds <= ROUNDS_MAX
    best_s, best_cpu_s = float("inf"), float("inf")
    for _ in range(rounds):
        cpu_before_s = _children_cpu_s()
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, timeout=COMMAND_TIMEOUT_S)
        elapsed_s = time.perf_counter() - started
        cpu_s = _children_cpu_s() - cpu_before_s
        if done.returncode != 0:
            raise SystemExit(f"{argv[2:]} exited {done.returncode}: {done.stdout!r} {done.stderr!r}")
        if elapsed_s < best_s:
            best_s, best_cpu_s = elapsed_s, cpu_s
    return best_s * 1000, best_cpu_s * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help=f"runs per command, best kept (1..{ROUNDS_MAX})"
    )
    parser.add_argument(
        "--no-bytecode-cache", action="store_true", help="keep the environment's bytecode setting"
    )
    args = parser.parse_args()
    if not 1 <= args.rounds <= ROUNDS_MAX:
        parser.error(f"--rounds must be 1..{ROUNDS_MAX}")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    load_1m, load_5m, _ = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, load average "
        f"{load_1m:.2f} (1 min) {load_5m:.2f} (5 min) at start; best of {args.rounds} cold starts"
    )
    python = [sys.executable]
    commands = {
        "python -c pass": [*python, "-c", "pass"],
        "megarouter --help": [*python, "-m", "proxy", "--help"],
        "megarouter usage --help": [*python, "-m", "proxy", "usage", "--help"],
        "megarouter ledger check": [*python, "-m", "proxy", "ledger", "check"],
    }
    with tempfile.TemporaryDirectory(prefix="cli-startup-") as work:
        if not args.no_bytecode_cache:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(Path(work) / "pycache")
        bytecode = "no" if env.get("PYTHONDONTWRITEBYTECODE") else "yes"
        print(f"bytecode cache: {bytecode}")
        state_dir = Path(work) / ".megarouter"
        state_dir.mkdir()
        asyncio.run(seed_demo_ledger(state_dir))
        figures_ms = {
            name: best_ms(argv, cwd=Path(work), env=env, rounds=args.rounds)
            for name, argv in commands.items()
        }
    baseline_ms, baseline_cpu_ms = figures_ms["python -c pass"]
    for name, (wall_ms, cpu_ms) in figures_ms.items():
        print(
            f"{name:<26} wall {wall_ms:7.1f} ms {wall_ms / baseline_ms:5.1f}x   "
            f"cpu {cpu_ms:7.1f} ms {cpu_ms / baseline_cpu_ms:5.1f}x   (x: python -c pass)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
