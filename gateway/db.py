"""Database engine creation and Alembic migrations.

SQLite gets WAL journaling, a busy timeout and foreign keys on every
connection so several threads and processes can share it; other backends
(PostgreSQL) use a normal connection pool, whose connections are checked at
checkout without a round trip (:func:`_drop_if_closed_by_server`).
"""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:  # Alembic (with Mako and Pygments) is ~11 MiB: loaded only to migrate
    from alembic.config import Config

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"

#: What SQLAlchemy raises when the database cannot serve a request right now
#: (PostgreSQL restarted, the network to it cut, the pool exhausted, SQLite
#: locked beyond its timeout): a wait, not a bug. The API answers 503
#: (:mod:`gateway.http.store_down`); the worker keeps what it has not recorded.
STORE_DOWN: tuple[type[Exception], ...] = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.TimeoutError,
)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _drop_if_closed_by_server(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout (psycopg): refuse a pooled connection the server has closed.

    An idle connection's socket has nothing to read -- unless the server ended
    the session (restart, ``pg_terminate_backend``, idle timeout), which sends
    its last message and closes. One non-blocking ``poll`` on the socket sees
    that, where ``pool_pre_ping`` costs a round trip per checkout (one more per
    ``GET /jobs``, bench/README.md). Raising DisconnectionError makes the pool
    open a new connection in its place. A connection that died silently (a cut
    network) passes and fails on use: SQLAlchemy then invalidates the whole
    pool, and :class:`~gateway.jobs.store.JobStore` reads once more.
    """
    from psycopg import pq  # installed with the "postgres" extra, the only way here

    pgconn = dbapi_conn.pgconn
    if pgconn.status != pq.ConnStatus.OK or pgconn.transaction_status != pq.TransactionStatus.IDLE:
        raise sa.exc.DisconnectionError("the pooled connection is no longer usable")
    poller = select.poll()
    poller.register(pgconn.socket, select.POLLIN)
    if poller.poll(0):
        raise sa.exc.DisconnectionError("the server closed the pooled connection")


def make_engine(url: str, pool_size: int = 10) -> Engine:
    """Create the engine for ``url``; creates the parent folder of a SQLite file.

    PostgreSQL through psycopg (3) checks pooled connections with
    :func:`_drop_if_closed_by_server`; other drivers with ``pool_pre_ping``.
    """
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    pooled = {"pool_size": pool_size, "max_overflow": pool_size}
    if parsed.get_driver_name() != "psycopg":
        return sa.create_engine(url, pool_pre_ping=True, **pooled)
    engine = sa.create_engine(url, **pooled)
    sa.event.listen(engine.pool, "checkout", _drop_if_closed_by_server)
    return engine


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision``."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def single_statement(engine: Engine) -> Iterator[Connection]:
    """A connection for one statement that is its own transaction (a lone INSERT or
    SELECT), committed when the block ends.

    On PostgreSQL the connection is in autocommit mode: the statement is atomic on its
    own, and the BEGIN and COMMIT/ROLLBACK round trips around it (two of three) are
    saved -- on the hot paths of job submission.
    On SQLite both are local and cheap: a normal transaction.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn
    else:
        with engine.begin() as conn:
            yield conn
