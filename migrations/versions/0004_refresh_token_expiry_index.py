"""an index on refresh_tokens.expires_at, for purging expired refresh tokens

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

Expired refresh tokens are now deleted (taskapi/ops/housekeeping.py), and a revoked one expires an hour
after its revocation, so one indexed condition, `expires_at < now`, finds every row that can
go.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_refresh_tokens_expires_at", "refresh_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_refresh_tokens_expires_at", table_name="refresh_tokens")
