"""`schema_is_current` lets short commands skip Alembic, and says False whenever a migration could be due.

Method: the heads read from the migration files are compared with Alembic's own reading of them; then a
real database (each backend) is checked fresh, migrated, and with its version row set back.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import create_ledger_engine, migrate
from ledger.engine import MIGRATIONS_DIR
from ledger.schema_version import VERSION_TABLE, VERSIONS_DIR, head_revisions, schema_is_current


def test_heads_agree_with_alembic() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert head_revisions() == frozenset(ScriptDirectory.from_config(config).get_heads())
    assert VERSIONS_DIR == MIGRATIONS_DIR / "versions"
    assert f'VERSION_TABLE = "{VERSION_TABLE}"' in (MIGRATIONS_DIR / "env.py").read_text()


def _write(directory: Path, name: str, text: str) -> None:
    (directory / name).write_text(text, encoding="utf-8")


def test_heads_of_a_chain_a_merge_and_annotated_assignments(tmp_path: Path) -> None:
    _write(tmp_path, "__init__.py", "")
    _write(tmp_path, "a.py", 'revision = "a"\ndown_revision = None\n')
    _write(tmp_path, "b.py", 'revision: str = "b"\ndown_revision: str | None = "a"\n')
    _write(tmp_path, "c.py", 'revision = "c"\ndown_revision = "a"\n')
    assert head_revisions(tmp_path) == frozenset({"b", "c"})
    _write(tmp_path, "d.py", 'revision = "d"\ndown_revision = ("b", "c")\n')
    assert head_revisions(tmp_path) == frozenset({"d"})


def test_no_heads_are_claimed_for_a_file_it_cannot_read(tmp_path: Path) -> None:
    _write(tmp_path, "a.py", 'revision = "a"\ndown_revision = None\n')
    _write(tmp_path, "b.py", 'revision = make_revision()\ndown_revision = "a"\n')
    assert head_revisions(tmp_path) is None
    assert head_revisions(tmp_path / "empty") is None


async def test_current_only_at_the_heads(database_url: str) -> None:
    engine: AsyncEngine = create_ledger_engine(database_url)
    try:
        assert not await schema_is_current(engine)
        await migrate(engine)
        assert await schema_is_current(engine)
        async with engine.begin() as connection:
            await connection.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = 'older'"))
        assert not await schema_is_current(engine)
    finally:
        await engine.dispose()
