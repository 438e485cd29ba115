"""an index for "stored since": the analysis catch-up after each sync reads the clips stored lately

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 03:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_clip_state_stored_at", "clip", ["state", "stored_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_clip_state_stored_at", table_name="clip")
