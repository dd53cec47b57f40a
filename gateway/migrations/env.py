"""Alembic environment: migrations run against the URL set by gateway.db.alembic_config."""

from alembic import context
from sqlalchemy import engine_from_config, pool

import gateway.accounting.tables
import gateway.apppkg.tables
import gateway.routing.tables
import gateway.triggers.tables
import gateway.web.tables  # noqa: F401  (registers the health, trigger and session tables)
from gateway.jobs.tables import metadata

config = context.config


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = engine_from_config(
        config.get_section(config.config_ini_section) or {},
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
