"""clip.archive_key: the key a clip owns in every destination (unique); index on storedobject.key

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clip", schema=None) as batch_op:
        batch_op.add_column(sa.Column("archive_key", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.create_index(batch_op.f("ix_clip_archive_key"), ["archive_key"], unique=True)
    with op.batch_alter_table("storedobject", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_storedobject_key"), ["key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("storedobject", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_storedobject_key"))
    with op.batch_alter_table("clip", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clip_archive_key"))
        batch_op.drop_column("archive_key")
