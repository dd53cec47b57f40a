"""hpc identities and user-sync audit log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

import gateway.jobs.tables


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('hpc_identities',
    sa.Column('sub', sa.String(length=255), nullable=False),
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('hpc_login', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('accounts', sa.JSON(), nullable=False),
    sa.Column('created', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sub', name=op.f('pk_hpc_identities')),
    sa.UniqueConstraint('hpc_login', name=op.f('uq_hpc_identities_hpc_login'))
    )
    op.create_table('usersync_audit',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('sub', sa.String(length=255), nullable=True),
    sa.Column('hpc_login', sa.String(length=64), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usersync_audit'))
    )
    with op.batch_alter_table('usersync_audit', schema=None) as batch_op:
        batch_op.create_index('ix_usersync_audit_at', ['at'], unique=False)
        batch_op.create_index('ix_usersync_audit_login', ['hpc_login', 'at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('usersync_audit', schema=None) as batch_op:
        batch_op.drop_index('ix_usersync_audit_login')
        batch_op.drop_index('ix_usersync_audit_at')
    op.drop_table('usersync_audit')
    op.drop_table('hpc_identities')
