"""The SQLAlchemy job store: the only place that reads or writes job rows.

Everything the workflow needs to resume after a crash lives here, so any
worker can pick up where another died. Concurrency is handled with
conditional UPDATEs (compare-and-set) rather than locks held across calls:

* :meth:`JobStore.transition` moves a job only from a state that may move to
  the target (forward-only, never out of a final state);
* :meth:`JobStore.claim` takes a time-limited lease on jobs to dispatch, so two
  workers never stage the same job, and an expired lease is taken over;
* :meth:`JobStore.acquire_lease` gives one worker at a time a named role
  (e.g. monitoring a site).
"""

from __future__ import annotations

import base64
import functools
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gateway import db
from gateway.jobs import tables
from gateway.jobs.extra_sql import patched_extra
from gateway.jobs.records import (
    Job,
    JobPage,
    JobQuery,
    JobSummary,
    JobUpdate,
    NewJob,
    Owner,
    Quote,
    ScheduledRef,
    SummaryPage,
    Unset,
    publication_live,
)
from gateway.jobs.states import SCHEDULED_STATES, VISIBLE_STATES, JobState

_t = tables.jobs


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobNotFound(LookupError):
    """No job with that id is visible to the caller."""


def _row_to_job(row: Mapping[Any, Any]) -> Job:
    return Job(
        id=row["id"],
        process_id=row["process_id"],
        process_version=row["process_version"],
        state=JobState(row["state"]),
        owner=Owner(sub=row["owner_sub"], username=row["owner_name"], hpc_login=row["hpc_login"]),
        site=row["site"],
        interface=row["interface"],
        inputs=row["inputs"] or {},
        outputs_request=row["outputs_request"],
        response=row["response"],
        created=row["created"],
        updated=row["updated"],
        started=row["started"],
        finished=row["finished"],
        progress=row["progress"],
        message=row["message"],
        scheduler_job_id=row["scheduler_job_id"],
        scheduler_state=row["scheduler_state"],
        exit_code=row["exit_code"],
        workspace=row["workspace"],
        results=row["results"],
        error=row["error"],
        attempts=row["attempts"] or 0,
        next_attempt_at=row["next_attempt_at"],
        cancel_pending=bool(row["cancel_pending"]),
        quote=Quote.from_dict(row["quote"]) if row["quote"] else None,
        subscriber=row["subscriber"],
        project=row["project"],
        extra=row["extra"] or {},
    )


#: What a status document needs (see :class:`JobSummary`); no inputs, results, quote...
#: In the order of JobSummary's fields (read by position: :func:`_row_to_summary`).
_SUMMARY_COLUMNS = (
    _t.c.id,
    _t.c.process_id,
    _t.c.state,
    _t.c.response,
    _t.c.created,
    tables.Rfc3339Millis(_t.c.created).label("created_text"),
    tables.Rfc3339Millis(_t.c.updated).label("updated_text"),
    tables.Rfc3339Millis(_t.c.started).label("started_text"),
    tables.Rfc3339Millis(_t.c.finished).label("finished_text"),
    _t.c.progress,
    _t.c.message,
    _t.c.scheduler_job_id,
    # only this member of ``extra``, as text: NULL (nothing to decode) unless published
    _t.c.extra["publication"].as_string().label("publication"),
    _t.c.site,
    _t.c.extra[("routing", "reason")].as_string().label("routing_reason"),
)
#: A job with published results that have not expired (it has a STAC Item); the
#: SQL twin of :func:`~gateway.jobs.records.publication_live`.
_PUBLISHED = sa.and_(
    _t.c.extra["publication"].as_string().is_not(None),
    _t.c.extra[("publication", "expired")].as_string().is_(None),
)
_SUMMARY_SELECT = sa.select(*_SUMMARY_COLUMNS)
_FULL_SELECT = sa.select(_t)
_NEWEST_FIRST = (_t.c.created.desc(), _t.c.id.desc())
_STATES = {s.value: s for s in JobState}
_STATE_AT = [c.name for c in _SUMMARY_COLUMNS].index("state")
_PUBLICATION_AT = [c.name for c in _SUMMARY_COLUMNS].index("publication")


def _row_to_summary(row: Sequence[Any]) -> JobSummary:
    """A :data:`_SUMMARY_COLUMNS` row as a JobSummary, built by position.

    ~1 µs a row, where reading 16 columns by label into keyword arguments took
    ~13 µs (x100 per page). Only two columns change on the way: the state
    becomes a JobState, the ``publication`` text the ``published`` flag.
    """
    fields = list(row)
    fields[_STATE_AT] = _STATES[fields[_STATE_AT]]
    publication = fields[_PUBLICATION_AT]
    fields[_PUBLICATION_AT] = publication is not None and publication_live(json.loads(publication))
    return JobSummary(*fields)


def _encode_cursor(created: datetime, job_id: str) -> str:
    raw = json.dumps([created.isoformat(), job_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Parse an opaque page cursor; raises ValueError when it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_s, job_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        created = datetime.fromisoformat(created_s)
    except (ValueError, TypeError) as exc:
        raise ValueError("invalid page cursor") from exc
    if created.tzinfo is None or not isinstance(job_id, str):
        raise ValueError("invalid page cursor")
    return created, job_id


@functools.lru_cache(maxsize=256)
def _listing_query(summary: bool, dialect: str, shape: frozenset[str]) -> sa.Select[Any]:
    """Summaries (or full rows) newest first with the filters named in ``shape``.

    Parameters: ``limit`` (page size + 1: the has-more probe) and those in
    ``shape``; ``visible`` in it (no parameter) stands for the states every list
    shows by default, as a fixed clause rather than an IN list expanded per call.
    The owner's list walks ``ix_jobs_owner_created`` and the admin's
    ``ix_jobs_created``; a ``created`` range narrows that walk. A
    duration filter cannot use an index (it depends on the clock for running
    jobs): it is checked on the rows the walk visits.
    """
    query = _SUMMARY_SELECT if summary else _FULL_SELECT
    created = _t.c.created
    if "owner_sub" in shape:
        query = query.where(_t.c.owner_sub == sa.bindparam("owner_sub"))
    if "process_ids" in shape:
        query = query.where(_t.c.process_id.in_(sa.bindparam("process_ids", expanding=True)))
    if "states" in shape:
        query = query.where(_t.c.state.in_(sa.bindparam("states", expanding=True)))
    if "visible" in shape:
        query = query.where(*(_t.c.state != s.value for s in set(JobState) - VISIBLE_STATES))
    if "created_start" in shape:
        query = query.where(created >= sa.bindparam("created_start", type_=tables.UTCDateTime))
    if "created_end" in shape:
        query = query.where(created < sa.bindparam("created_end", type_=tables.UTCDateTime))
    if "now" in shape:
        query = query.where(*_duration_clauses(dialect, "min_ms" in shape, "max_ms" in shape))
    if "published" in shape:
        query = query.where(_PUBLISHED)
    if "after_created" in shape:
        after = sa.bindparam("after_created", type_=tables.UTCDateTime)
        query = query.where(
            sa.or_(
                created < after,
                sa.and_(created == after, _t.c.id < sa.bindparam("after_id")),
            )
        )
    return query.order_by(*_NEWEST_FIRST).limit(sa.bindparam("limit", type_=sa.Integer))


def _duration_clauses(dialect: str, low: bool, high: bool) -> list[sa.ColumnElement[bool]]:
    """Run duration in ``[min_ms, max_ms]`` (parameters; ``now`` is the request's time).

    Duration is ``finished - started``, or ``now - started`` while the job
    runs; NULL (no match) when it never started. Milliseconds, rounded, so a
    job that ran exactly 10 s matches ``minDuration=10`` on every backend.
    """
    end = sa.func.coalesce(_t.c.finished, sa.bindparam("now", type_=tables.UTCDateTime))
    run_ms: sa.ColumnElement[Any]
    if dialect == "sqlite":
        # julianday() is exact to the millisecond; SQLite has no interval type
        run_ms = sa.func.round(
            (sa.func.julianday(end) - sa.func.julianday(_t.c.started)) * 86_400_000.0
        )
    elif dialect == "postgresql":
        run_ms = sa.func.round(sa.extract("epoch", end - _t.c.started) * 1000)
    else:
        raise NotImplementedError(f"duration filters are not implemented for {dialect}")
    clauses: list[sa.ColumnElement[bool]] = [_t.c.started.is_not(None)]
    if low:
        clauses.append(run_ms >= sa.bindparam("min_ms", type_=sa.BigInteger))
    if high:
        clauses.append(run_ms <= sa.bindparam("max_ms", type_=sa.BigInteger))
    return clauses


class JobStore:
    """Job rows on any SQLAlchemy engine (SQLite WAL by default, PostgreSQL in production)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: The open transaction of :meth:`batched`, per thread.
        self._batch = threading.local()

    def _read(
        self, statement: sa.Executable, params: dict[str, Any] | None = None
    ) -> Sequence[sa.Row[Any]]:
        """The rows of one SELECT; on PostgreSQL in autocommit mode, read again once
        if the connection turned out dead.

        One statement needs no transaction (:func:`gateway.db.single_statement`):
        on PostgreSQL this saves the BEGIN and ROLLBACK round trips around it
        (~0.8 ms per job-list request). A pooled connection the server dropped
        without a word (see :func:`gateway.db.make_engine`) fails on use;
        SQLAlchemy then discards the pool's connections, and a read is safe to
        repeat on a new one.
        """
        for attempt in (1, 2):
            try:
                with db.single_statement(self.engine) as conn:
                    return conn.execute(statement, params).all()
            except sa.exc.DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    @contextmanager
    def batched(self) -> Iterator[None]:
        """The calling thread's :meth:`transition` and :meth:`update` calls in the block
        share one transaction, committed when it ends (all or nothing).

        For a worker stage that moves many jobs at once (the monitor after a
        poll): one commit instead of one per job. Each write still reports at
        once whether it applied. Reads in the block do not see its writes yet
        (other connections), and other threads' writes keep their own.
        """
        if getattr(self._batch, "conn", None) is not None:
            yield
            return
        with self.engine.begin() as conn:
            self._batch.conn = conn
            try:
                yield
            finally:
                self._batch.conn = None

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """The thread's :meth:`batched` transaction, or a transaction of its own."""
        conn = getattr(self._batch, "conn", None)
        if conn is not None:
            yield conn
            return
        with self.engine.begin() as conn:
            yield conn

    # -- creation and reads -------------------------------------------------

    def create(self, new: NewJob) -> Job:
        """Insert a job in state ``accepted``; committed when this returns."""
        now = utcnow()
        values: dict[str, Any] = {
            "id": new.id,
            "process_id": new.process_id,
            "process_version": new.process_version,
            "state": JobState.ACCEPTED.value,
            "owner_sub": new.owner.sub,
            "owner_name": new.owner.username,
            "hpc_login": new.owner.hpc_login,
            "project": new.project,
            "site": new.site,
            "interface": new.interface,
            "inputs": new.inputs,
            "outputs_request": new.outputs_request,
            "response": new.response,
            "created": now,
            "updated": now,
            "progress": 0,
            "message": _accepted_message(new),
            "attempts": 0,
            "next_attempt_at": now,
            "cancel_pending": False,
            "cleanup_pending": False,
            "quote": new.quote.to_dict() if new.quote is not None else None,
            "subscriber": new.subscriber,
            "extra": _new_extra(new),
        }
        with db.single_statement(self.engine) as conn:
            conn.execute(_t.insert().values(**values))
        return _row_to_job({**dict.fromkeys(_t.columns.keys()), **values})

    def get(self, job_id: str, owner_sub: str | None = None) -> Job:
        """Read one job; with ``owner_sub`` another owner's job is reported as absent."""
        query = sa.select(_t).where(_t.c.id == job_id)
        if owner_sub is not None:
            query = query.where(_t.c.owner_sub == owner_sub)
        rows = self._read(query)
        if not rows:
            raise JobNotFound(job_id)
        return _row_to_job(rows[0]._mapping)

    def page(self, query: JobQuery) -> JobPage:
        """Full jobs, newest first, keyset-paginated on (created, id).

        Cost does not grow with depth. Filters as in :meth:`summaries`; use that
        for listings, this where the whole job (inputs, results...) is needed.
        """
        statement, params = self._listing(False, query)
        rows = self._read(statement, params)
        jobs = [_row_to_job(r._mapping) for r in rows[: query.limit]]
        next_cursor = None
        if len(rows) > query.limit and jobs:
            next_cursor = _encode_cursor(jobs[-1].created, jobs[-1].id)
        return JobPage(jobs=jobs, next_cursor=next_cursor)

    def summaries(self, query: JobQuery) -> SummaryPage:
        """One page of the job list: only the columns a status document shows.

        Newest first, keyset-paginated on (created, id) (``query.cursor`` is the
        previous page's ``next_cursor``; a malformed one raises ValueError).
        Every filter of ``query`` must match (see :class:`JobQuery`); they are
        all applied in the database, so a page is short only when it is the last.
        """
        statement, params = self._listing(True, query)
        rows = self._read(statement, params)
        jobs = [_row_to_summary(r) for r in rows[: query.limit]]
        next_cursor = None
        if len(rows) > query.limit and jobs:
            next_cursor = _encode_cursor(jobs[-1].created, jobs[-1].id)
        return SummaryPage(jobs=jobs, next_cursor=next_cursor)

    def _listing(self, summary: bool, query: JobQuery) -> tuple[sa.Select[Any], dict[str, Any]]:
        """The listing statement for ``query``, and its parameters.

        The statement's *shape* (which filters are present) is built once and
        cached (:func:`_listing_query`); the values travel as bound parameters,
        so a request does not rebuild the statement. A malformed cursor
        raises ValueError.
        """
        params: dict[str, Any] = {"limit": query.limit + 1}
        if query.owner_sub is not None:
            params["owner_sub"] = query.owner_sub
        if query.process_ids:
            params["process_ids"] = list(query.process_ids)
        state_values = sorted(s.value for s in query.states)
        visible = query.states == VISIBLE_STATES  # every list's default: a fixed statement
        if state_values and not visible:
            params["states"] = state_values
        created, duration = query.created, query.duration
        if created is not None and created.start is not None:
            params["created_start"] = created.start
        if created is not None and created.end is not None:
            params["created_end"] = created.end
        if duration is not None:
            params["now"] = utcnow()
            if duration.min_seconds is not None:
                params["min_ms"] = duration.min_seconds * 1000
            if duration.max_seconds is not None:
                params["max_ms"] = duration.max_seconds * 1000
        shape = frozenset(params) - {"limit"}
        if visible:
            shape |= {"visible"}
        if query.published:
            shape |= {"published"}
        if query.cursor:
            params["after_created"], params["after_id"] = decode_cursor(query.cursor)
            shape |= {"after_created"}
        return _listing_query(summary, self.engine.dialect.name, shape), params

    # -- state changes ------------------------------------------------------

    def transition(self, job_id: str, target: JobState, update: JobUpdate | None = None) -> bool:
        """Move a job to ``target`` if allowed from its current state.

        Returns False (and changes nothing) when the job is already in a state
        that may not move to ``target`` -- e.g. it was dismissed meanwhile.
        Final targets also set ``finished`` and release any lease; their
        ``next_attempt_at`` is cleared unless given (a final job with one has
        subscriber notifications owed, see :meth:`due_notifications`).
        """
        now = utcnow()
        changes = self._columns(update)
        values: dict[str, Any] = {"state": target.value, "updated": now, **changes}
        if target.final:
            values.setdefault("finished", now)
            values.setdefault("next_attempt_at", None)
            values.update(lease_owner=None, lease_until=None)
        if target is JobState.RUNNING:
            values.setdefault("started", now)
        sources = [s.value for s in target.sources()]
        stmt = _t.update().where(_t.c.id == job_id, _t.c.state.in_(sources)).values(**values)
        with self._writing() as conn:
            return conn.execute(stmt).rowcount == 1

    def update(
        self, job_id: str, update: JobUpdate, *, only_if_state: JobState | None = None
    ) -> bool:
        """Change columns without changing state (progress, message, scheduler id...)."""
        stmt = (
            _t.update().where(_t.c.id == job_id).values(updated=utcnow(), **self._columns(update))
        )
        if only_if_state is not None:
            stmt = stmt.where(_t.c.state == only_if_state.value)
        with self._writing() as conn:
            return conn.execute(stmt).rowcount == 1

    def _columns(self, update: JobUpdate | None) -> dict[str, Any]:
        """The UPDATE's column values; ``extra_keys`` become one per-key expression."""
        if update is None:
            return {}
        values = update.values()
        keys = update.extra_keys
        if not isinstance(keys, Unset):
            if "extra" in values:
                raise ValueError("a JobUpdate sets either extra or extra_keys, not both")
            values["extra"] = patched_extra(_t.c.extra, keys, self.engine.dialect.name)
        return values

    def update_many_progress(self, changes: dict[str, tuple[int | None, str | None]]) -> None:
        """Batch progress updates from one monitoring cycle, in one transaction."""
        if not changes:
            return
        now = utcnow()
        with self.engine.begin() as conn:
            for job_id, (progress, message) in changes.items():
                values: dict[str, Any] = {"updated": now}
                if progress is not None:
                    values["progress"] = progress
                if message is not None:
                    values["message"] = message
                conn.execute(_t.update().where(_t.c.id == job_id).values(**values))

    # -- worker queues ------------------------------------------------------

    def claim(
        self, owner: str, states: Sequence[JobState], limit: int, lease_seconds: float
    ) -> list[Job]:
        """Lease up to ``limit`` due jobs in ``states`` for ``owner``.

        A job is due when its ``next_attempt_at`` has passed and nobody holds an
        unexpired lease on it. Each claim is a compare-and-set UPDATE, so
        concurrent workers (threads, processes or hosts) never share a job.
        """
        now = utcnow()
        due = (
            sa.select(_t.c.id, _t.c.lease_until)
            .where(
                _t.c.state.in_([s.value for s in states]),
                sa.or_(_t.c.next_attempt_at.is_(None), _t.c.next_attempt_at <= now),
                sa.or_(_t.c.lease_until.is_(None), _t.c.lease_until < now),
            )
            .order_by(_t.c.created)
            .limit(limit)
        )
        until = now + timedelta(seconds=lease_seconds)
        claimed: list[str] = []
        with self.engine.begin() as conn:
            for row in conn.execute(due).all():
                old = row.lease_until
                cond = _t.c.lease_until.is_(None) if old is None else _t.c.lease_until == old
                stmt = (
                    _t.update()
                    .where(_t.c.id == row.id, cond)
                    .values(lease_owner=owner, lease_until=until)
                )
                if conn.execute(stmt).rowcount == 1:
                    claimed.append(row.id)
        return self.many(claimed)

    def many(self, ids: list[str]) -> list[Job]:
        """The jobs ``ids``, in that order, in one SELECT (absent ones left out)."""
        if not ids:
            return []
        rows = self._read(sa.select(_t).where(_t.c.id.in_(ids)))
        found = {row.id: _row_to_job(row._mapping) for row in rows}
        return [found[i] for i in ids if i in found]

    def renew_leases(self, owner: str, ids: Sequence[str], lease_seconds: float) -> set[str]:
        """Extend ``owner``'s unexpired leases on ``ids``; the ids it still holds.

        A lease that has expired (or was taken over) is not renewed: the job may be
        another worker's now, and the caller must not act on it any more.
        """
        if not ids:
            return set()
        now = utcnow()
        mine = sa.and_(_t.c.id.in_(list(ids)), _t.c.lease_owner == owner, _t.c.lease_until >= now)
        with self.engine.begin() as conn:
            conn.execute(
                _t.update().where(mine).values(lease_until=now + timedelta(seconds=lease_seconds))
            )
            return {r[0] for r in conn.execute(sa.select(_t.c.id).where(mine))}

    def release(
        self, job_id: str, update: JobUpdate | None = None, *, retry_in: float | None = None
    ) -> None:
        """Drop the lease; with ``retry_in`` the job becomes due again after that delay."""
        changes = self._columns(update)
        values: dict[str, Any] = {"lease_owner": None, "lease_until": None, **changes}
        if retry_in is not None:
            values["next_attempt_at"] = utcnow() + timedelta(seconds=retry_in)
        with self.engine.begin() as conn:
            conn.execute(_t.update().where(_t.c.id == job_id).values(**values))

    def scheduled(self, site: str) -> list[Job]:
        """Jobs with a live scheduler job at ``site`` (what the monitor follows)."""
        query = (
            sa.select(_t)
            .where(_t.c.site == site, _t.c.state.in_([s.value for s in SCHEDULED_STATES]))
            .order_by(_t.c.created)
        )
        with self.engine.connect() as conn:
            return [_row_to_job(r) for r in conn.execute(query).mappings().all()]

    def scheduled_refs(self, site: str) -> list[ScheduledRef]:
        """Workspaces of the jobs :meth:`scheduled` returns (three columns: cheap enough
        for every fast worker cycle)."""
        query = sa.select(_t.c.id, _t.c.workspace, _t.c.hpc_login).where(
            _t.c.site == site,
            _t.c.state.in_([s.value for s in SCHEDULED_STATES]),
            _t.c.scheduler_job_id.is_not(None),
            _t.c.workspace.is_not(None),
        )
        return [ScheduledRef(r.id, r.workspace, r.hpc_login) for r in self._read(query)]

    def pending_cancels(self, limit: int = 100) -> list[Job]:
        """Dismissed jobs whose scheduler cancel or workspace clean-up is still owed."""
        query = (
            sa.select(_t)
            .where(sa.or_(_t.c.cancel_pending.is_(True), _t.c.cleanup_pending.is_(True)))
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_row_to_job(r) for r in conn.execute(query).mappings().all()]

    def due_notifications(self, states: Sequence[JobState], limit: int) -> list[Job]:
        """Jobs with a subscriber whose ``next_attempt_at`` has passed, oldest due first.

        For final jobs ``next_attempt_at`` is set only while a callback is owed;
        active jobs may carry a stale one, so callers check what is really owed.
        """
        now = utcnow()
        query = (
            sa.select(_t)
            .where(
                _t.c.state.in_([s.value for s in states]),
                _t.c.next_attempt_at.is_not(None),
                _t.c.next_attempt_at <= now,
                # JSON columns store None as the JSON text 'null'
                sa.cast(_t.c.subscriber, sa.Text) != "null",
            )
            .order_by(_t.c.next_attempt_at)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_row_to_job(r) for r in conn.execute(query).mappings().all()]

    def sites_with_scheduled_jobs(self) -> list[str]:
        query = (
            sa.select(_t.c.site)
            .where(_t.c.state.in_([s.value for s in SCHEDULED_STATES]))
            .distinct()
        )
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(query).all()]

    # -- named leases -------------------------------------------------------

    def acquire_lease(self, name: str, owner: str, seconds: float) -> bool:
        """Take or renew the named lease; True if ``owner`` holds it afterwards."""
        now = utcnow()
        until = now + timedelta(seconds=seconds)
        lt = tables.leases
        with self.engine.begin() as conn:
            stmt = (
                lt.update()
                .where(lt.c.name == name, sa.or_(lt.c.owner == owner, lt.c.until < now))
                .values(owner=owner, until=until)
            )
            if conn.execute(stmt).rowcount == 1:
                return True
            exists = conn.execute(sa.select(lt.c.name).where(lt.c.name == name)).first()
            if exists is not None:
                return False
            try:
                with conn.begin_nested():
                    conn.execute(lt.insert().values(name=name, owner=owner, until=until))
            except sa.exc.IntegrityError:
                return False
            return True

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(_t)).scalar_one())


def _accepted_message(new: NewJob) -> str:
    """``Job accepted``, with where it goes and why when it was routed."""
    reason = (new.routing or {}).get("reason")
    return f"Job accepted for {new.site}: {reason}" if reason else "Job accepted"


def _new_extra(new: NewJob) -> dict[str, Any]:
    """The ``extra`` a new job starts with: its routing record, the forwarded token
    (until submission), the client (portal) that submitted it or the trigger that did."""
    extra: dict[str, Any] = {}
    if new.forward_token:
        extra["forward_token"] = new.forward_token
    if new.submitted_via:
        extra["submitted_via"] = {"client": new.submitted_via}
    if new.routing is not None:
        extra["routing"] = new.routing
    if new.origin is not None:
        extra["trigger"] = new.origin
    return extra
