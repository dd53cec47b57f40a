"""web: server-side browser sessions

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa

import gateway.jobs.tables


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('browser_sessions',
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id_hash')
    )
    op.create_index('ix_browser_sessions_expires', 'browser_sessions', ['expires'])


def downgrade() -> None:
    op.drop_index('ix_browser_sessions_expires', table_name='browser_sessions')
    op.drop_table('browser_sessions')
