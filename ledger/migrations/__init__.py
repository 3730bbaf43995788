"""Alembic migrations of the ledger schema (own version table `ledger_alembic_version`)."""
