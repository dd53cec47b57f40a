"""routing: the latest health probe of each site

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa

import gateway.jobs.tables


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('site_health',
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('up', sa.Boolean(), nullable=False),
    sa.Column('latency_seconds', sa.Float(), nullable=True),
    sa.Column('checked_at', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('since', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('site')
    )


def downgrade() -> None:
    op.drop_table('site_health')
