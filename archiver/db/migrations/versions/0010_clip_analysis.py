"""what is in each clip (issue 24): the activity score per clip and its detection tags, and the
silence watch's open alerts

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-08 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clip_analysis",
        sa.Column("clip_id", sa.Integer(), sa.ForeignKey("clip.id"), primary_key=True),
        sa.Column("activity", sa.Float(), nullable=True),
        sa.Column("detectors", sa.String(), nullable=False),
        sa.Column("analyzed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_clip_analysis_activity", "clip_analysis", ["activity"])
    op.create_table(
        "clip_tag",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("clip_id", sa.Integer(), sa.ForeignKey("clip.id"), nullable=False),
        sa.Column("detector", sa.String(), nullable=False),
        sa.Column("label", sa.String(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("at_s", sa.Float(), nullable=False),
    )
    op.create_index("ix_clip_tag_clip_id", "clip_tag", ["clip_id"])
    op.create_index("ix_clip_tag_label_clip", "clip_tag", ["label", "clip_id"])
    op.create_table(
        "silence_alert",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("account.id"), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.String(), nullable=True),
        sa.UniqueConstraint("account_id", "kind", "subject"),
    )
    op.create_index("ix_silence_alert_account_id", "silence_alert", ["account_id"])


def downgrade() -> None:
    op.drop_table("silence_alert")
    op.drop_index("ix_clip_tag_label_clip", "clip_tag")
    op.drop_index("ix_clip_tag_clip_id", "clip_tag")
    op.drop_table("clip_tag")
    op.drop_index("ix_clip_analysis_activity", "clip_analysis")
    op.drop_table("clip_analysis")
