"""apppkg: deployed CWL application packages (OGC API - Processes Part 2)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa

import gateway.jobs.tables


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('deployed_processes',
    sa.Column('process_id', sa.String(length=64), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('owner_sub', sa.String(length=255), nullable=False),
    sa.Column('owner_name', sa.String(length=255), nullable=False),
    sa.Column('created', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('process_id', name=op.f('pk_deployed_processes'))
    )
    op.create_table('deployed_packages',
    sa.Column('process_id', sa.String(length=64), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('package', sa.Text(), nullable=False),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.Column('owner_sub', sa.String(length=255), nullable=False),
    sa.Column('created', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('process_id', 'digest', name=op.f('pk_deployed_packages'))
    )


def downgrade() -> None:
    op.drop_table('deployed_packages')
    op.drop_table('deployed_processes')
