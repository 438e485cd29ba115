"""covering indexes for the web UI's overviews: stored clips per camera, size per destination

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 04:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_clip_state_camera", "clip", ["state", "account_id", "camera_blink_id", "created_at"], unique=False
    )
    op.create_index("ix_storedobject_destination_size", "storedobject", ["destination", "size"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_storedobject_destination_size", table_name="storedobject")
    op.drop_index("ix_clip_state_camera", table_name="clip")
