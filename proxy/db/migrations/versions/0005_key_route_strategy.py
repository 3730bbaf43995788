"""API keys may carry a default routing strategy.

Revision ID: p0005
Revises: p0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p0005"
down_revision = "p0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("account_api_keys") as batch:
        batch.add_column(sa.Column("route_strategy", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("account_api_keys") as batch:
        batch.drop_column("route_strategy")
