"""accounting: usage records, pending usage reads, budgets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

import gateway.jobs.tables


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('accounting_usage',
    sa.Column('job_id', sa.String(length=36), nullable=False),
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('scheduler_job_id', sa.String(length=64), nullable=False),
    sa.Column('process_id', sa.String(length=128), nullable=False),
    sa.Column('owner_sub', sa.String(length=255), nullable=False),
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('hpc_login', sa.String(length=64), nullable=False),
    sa.Column('project', sa.String(length=64), nullable=False),
    sa.Column('partition', sa.String(length=64), nullable=True),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('alloc_cpus', sa.Integer(), nullable=False),
    sa.Column('elapsed_seconds', sa.Integer(), nullable=False),
    sa.Column('cpu_seconds', sa.BigInteger(), nullable=False),
    sa.Column('core_hours', sa.Float(), nullable=False),
    sa.Column('total_cpu_seconds', sa.Float(), nullable=True),
    sa.Column('billing', sa.Integer(), nullable=True),
    sa.Column('max_rss_bytes', sa.BigInteger(), nullable=True),
    sa.Column('queue_wait_seconds', sa.Float(), nullable=True),
    sa.Column('submit_time', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('start_time', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('end_time', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('quoted_core_hours', sa.Float(), nullable=True),
    sa.Column('quoted_cost', sa.Float(), nullable=True),
    sa.Column('cost', sa.Float(), nullable=False),
    sa.Column('currency', sa.String(length=8), nullable=False),
    sa.Column('recorded_at', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_accounting_usage_job_id_jobs')),
    sa.PrimaryKeyConstraint('job_id', name=op.f('pk_accounting_usage'))
    )
    with op.batch_alter_table('accounting_usage', schema=None) as batch_op:
        batch_op.create_index('ix_accounting_usage_end', ['end_time'], unique=False)
        batch_op.create_index('ix_accounting_usage_login_end', ['hpc_login', 'end_time'], unique=False)
        batch_op.create_index('ix_accounting_usage_project_end', ['project', 'end_time'], unique=False)
        batch_op.create_index('ix_accounting_usage_process_end', ['process_id', 'site', 'end_time'], unique=False)

    op.create_table('accounting_usage_pending',
    sa.Column('job_id', sa.String(length=36), nullable=False),
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('scheduler_job_id', sa.String(length=64), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('first_seen', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_accounting_usage_pending_job_id_jobs')),
    sa.PrimaryKeyConstraint('job_id', name=op.f('pk_accounting_usage_pending'))
    )
    with op.batch_alter_table('accounting_usage_pending', schema=None) as batch_op:
        batch_op.create_index('ix_accounting_usage_pending_next', ['next_attempt_at'], unique=False)

    op.create_table('accounting_budgets',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('period', sa.String(length=16), nullable=False),
    sa.Column('limit_core_hours', sa.Float(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated', gateway.jobs.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounting_budgets')),
    sa.UniqueConstraint('scope', 'name', 'period', name=op.f('uq_accounting_budgets_scope_name_period'))
    )


def downgrade() -> None:
    op.drop_table('accounting_budgets')
    with op.batch_alter_table('accounting_usage_pending', schema=None) as batch_op:
        batch_op.drop_index('ix_accounting_usage_pending_next')
    op.drop_table('accounting_usage_pending')
    with op.batch_alter_table('accounting_usage', schema=None) as batch_op:
        batch_op.drop_index('ix_accounting_usage_process_end')
        batch_op.drop_index('ix_accounting_usage_project_end')
        batch_op.drop_index('ix_accounting_usage_login_end')
        batch_op.drop_index('ix_accounting_usage_end')
    op.drop_table('accounting_usage')
