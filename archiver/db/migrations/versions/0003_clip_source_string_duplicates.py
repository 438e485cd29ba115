"""Clip.source becomes a plain string (a new source needs no migration); duplicates are data.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"  # re-chained after 0002 (auth) at the merge
branch_labels = None
depends_on = None

_MARKER = "duplicate: same recording archived from %"


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        # clipstate gains 'duplicate'. ALTER TYPE ... ADD VALUE would make it usable only once committed
        # (the rows below need it in this transaction, and an upgrade is one transaction): the type is
        # made again with the value appended, the same type ADD VALUE makes.
        op.execute("ALTER TYPE clipstate RENAME TO clipstate_0002")
        op.execute(
            "CREATE TYPE clipstate AS ENUM "
            "('discovered', 'downloaded', 'stored', 'failed', 'pruned', 'duplicate')"
        )
        op.execute("ALTER TABLE clip ALTER COLUMN state TYPE clipstate USING state::text::clipstate")
        op.execute("DROP TYPE clipstate_0002")
    with op.batch_alter_table("clip", schema=None) as batch_op:
        batch_op.alter_column(
            "source",
            existing_type=sa.Enum("cloud", "local", name="clipsource"),
            type_=sqlmodel.sql.sqltypes.AutoString(),
            existing_nullable=False,
            postgresql_using="source::text",
        )
        batch_op.add_column(sa.Column("duplicate_of", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_clip_duplicate_of_clip", "clip", ["duplicate_of"], ["id"])
        batch_op.create_index(batch_op.f("ix_clip_duplicate_of"), ["duplicate_of"], unique=False)
    if postgres:
        op.execute("DROP TYPE IF EXISTS clipsource")
    # the old marker (state stored, no objects, the twin's identity in last_error) becomes data
    clip = sa.table(
        "clip",
        sa.column("id", sa.Integer),
        sa.column("account_id", sa.Integer),
        sa.column("identity", sa.String),
        sa.column("state", sa.String),
        sa.column("last_error", sa.String),
        sa.column("duplicate_of", sa.Integer),
    )
    rows = bind.execute(
        sa.select(clip.c.id, clip.c.account_id, clip.c.last_error).where(clip.c.last_error.like(_MARKER))
    ).all()
    for row_id, account_id, text in rows:
        twin_identity = text.rsplit(" as ", 1)[-1]
        twin = bind.execute(
            sa.select(clip.c.id).where(clip.c.account_id == account_id, clip.c.identity == twin_identity)
        ).scalar()
        bind.execute(
            clip.update()
            .where(clip.c.id == row_id)
            .values(state=sa.literal_column("'duplicate'"), duplicate_of=twin, last_error=None)
        )


def downgrade() -> None:
    with op.batch_alter_table("clip", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clip_duplicate_of"))
        batch_op.drop_constraint("fk_clip_duplicate_of_clip", type_="foreignkey")
        batch_op.drop_column("duplicate_of")
