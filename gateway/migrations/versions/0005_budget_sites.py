"""accounting: budgets per site (``site``: a site name, or ``*`` for every site)

Existing budgets become all-sites budgets (``*``), which is what they meant.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('accounting_budgets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('site', sa.String(length=64), server_default='*', nullable=False))
        batch_op.drop_constraint('uq_accounting_budgets_scope_name_period', type_='unique')
        batch_op.create_unique_constraint(
            batch_op.f('uq_accounting_budgets_scope_name_period_site'), ['scope', 'name', 'period', 'site']
        )


def downgrade() -> None:
    op.execute("DELETE FROM accounting_budgets WHERE site <> '*'")  # not expressible before
    with op.batch_alter_table('accounting_budgets', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_accounting_budgets_scope_name_period_site'), type_='unique')
        batch_op.create_unique_constraint(
            'uq_accounting_budgets_scope_name_period', ['scope', 'name', 'period']
        )
        batch_op.drop_column('site')
