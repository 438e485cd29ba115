"""derived-object kinds become plain strings (a new processing step needs no migration); the per-account
back-off of automatic sign-ins that Blink's edge (Cloudflare) refused

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 00:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # SQLite stores the enum as VARCHAR without a CHECK constraint already: nothing to change there
        op.execute("ALTER TABLE storedobject ALTER COLUMN kind TYPE VARCHAR USING kind::text")
        op.execute("DROP TYPE IF EXISTS objectkind")
        # a derived file (a day's summary video) can pass 2 GiB
        op.execute("ALTER TABLE storedobject ALTER COLUMN size TYPE BIGINT")
        op.execute("ALTER TABLE clip ALTER COLUMN size TYPE BIGINT")
    # plain ADD COLUMNs: no table recreation on SQLite
    op.add_column("account", sa.Column("signin_blocked_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "account", sa.Column("signin_blocks", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )
    op.add_column(
        "account", sa.Column("signin_block_reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("account", "signin_block_reason")
    op.drop_column("account", "signin_blocks")
    op.drop_column("account", "signin_blocked_until")
