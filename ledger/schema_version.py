"""Whether a database's ledger schema is already at the newest migration, without importing Alembic.

`migrate(engine)` is safe at every start but loads Alembic (about a quarter of a second) even when there is
nothing to do. Short commands (`megarouter ledger check`) first compare the database's version table with
the head revisions read from the migration files' `revision` / `down_revision` assignments, and migrate
only when they differ. When a file cannot be read that way, no head is claimed and the caller migrates:
a wrong answer here can cost a migration run, never a skipped one. tests/integration/ledger/
test_schema_version.py checks the heads against Alembic's own reading of the same files.
"""

from __future__ import annotations

import ast
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["VERSIONS_DIR", "VERSION_TABLE", "head_revisions", "schema_is_current"]

# Must equal VERSION_TABLE in ledger/migrations/env.py (that module runs Alembic when imported).
VERSION_TABLE = "ledger_alembic_version"
VERSIONS_DIR = Path(__file__).parent / "migrations" / "versions"
MIGRATION_FILE_COUNT_MAX = 10_000


def _assigned_revisions(path: Path) -> tuple[str, frozenset[str]] | None:
    """A migration file's `revision` and the revisions it follows, or None when they are not literals."""
    values: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in {"revision", "down_revision"}:
            try:
                values[target.id] = ast.literal_eval(value)
            except ValueError:
                return None
    revision, down = values.get("revision"), values.get("down_revision")
    if not isinstance(revision, str):
        return None
    if down is None:
        return revision, frozenset()
    if isinstance(down, str):
        return revision, frozenset({down})
    if isinstance(down, tuple | list) and all(isinstance(item, str) for item in down):
        return revision, frozenset(down)
    return None


def head_revisions(versions_dir: Path = VERSIONS_DIR) -> frozenset[str] | None:
    """The revisions no other migration follows, or None when a migration file cannot be read here."""
    paths = sorted(p for p in versions_dir.glob("*.py") if p.name != "__init__.py")
    assert len(paths) <= MIGRATION_FILE_COUNT_MAX
    revisions: set[str] = set()
    followed: set[str] = set()
    for path in paths:
        assigned = _assigned_revisions(path)
        if assigned is None:
            return None
        revisions.add(assigned[0])
        followed |= assigned[1]
    heads = frozenset(revisions - followed)
    return heads or None


async def schema_is_current(engine: AsyncEngine) -> bool:
    """True when the database's ledger version table holds exactly the head revisions (read-only)."""
    heads = head_revisions()
    if heads is None:
        return False
    async with engine.connect() as connection:
        exists = await connection.run_sync(lambda sync: sa.inspect(sync).has_table(VERSION_TABLE))
        if not exists:
            return False
        rows = await connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}"))
        stored = frozenset(str(version) for version in rows.scalars())
    return stored == heads
