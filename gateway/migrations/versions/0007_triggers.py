"""triggers: stored rules and their activations (one per trigger and event)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa

import gateway.jobs.tables


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('triggers',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('owner_sub', sa.String(length=255), nullable=False),
    sa.Column('owner_name', sa.String(length=255), nullable=False),
    sa.Column('hpc_login', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('rule', sa.JSON(), nullable=False),
    sa.Column('created', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('etag', sa.String(length=255), nullable=True),
    sa.Column('last_modified', sa.String(length=64), nullable=True),
    sa.Column('next_poll_at', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_polled', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_triggers'))
    )
    op.create_index('ix_triggers_owner_created', 'triggers', ['owner_sub', 'created'])
    op.create_index('ix_triggers_enabled_next', 'triggers', ['enabled', 'next_poll_at'])
    op.create_table('trigger_activations',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('trigger_id', sa.String(length=36), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('event', sa.JSON(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trigger_activations')),
    sa.UniqueConstraint('trigger_id', 'event_id',
                        name=op.f('uq_trigger_activations_trigger_id_event_id'))
    )
    op.create_index('ix_trigger_activations_trigger_created', 'trigger_activations',
                    ['trigger_id', 'created'])


def downgrade() -> None:
    op.drop_index('ix_trigger_activations_trigger_created', table_name='trigger_activations')
    op.drop_table('trigger_activations')
    op.drop_index('ix_triggers_enabled_next', table_name='triggers')
    op.drop_index('ix_triggers_owner_created', table_name='triggers')
    op.drop_table('triggers')
