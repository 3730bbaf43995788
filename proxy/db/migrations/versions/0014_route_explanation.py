"""Usage events keep how their route was chosen (task kind, difficulty, quality needed, candidates, quotes).

Revision ID: p0014
Revises: p0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p0014"
down_revision = "p0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_events") as batch:
        batch.add_column(sa.Column("route_explanation_json", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_events") as batch:
        batch.drop_column("route_explanation_json")
