"""The trigger store: rules, their feed state and their activations (SQLAlchemy Core).

Owner isolation is a ``WHERE owner_sub = ...`` on every read and write made for
a user (``owner_sub=None``: an admin, every trigger). :meth:`TriggerStore.claim_event`
is the once-per-event guarantee: an INSERT under the unique ``(trigger_id,
event_id)``, which only one worker -- now or after any restart -- can make.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.jobs.records import Owner
from gateway.jobs.store import utcnow
from gateway.triggers.records import Activation, FeedState, Trigger, TriggerRule
from gateway.triggers.tables import trigger_activations as _a
from gateway.triggers.tables import triggers as _t

#: Activation outcomes.
PENDING, SUBMITTED, REFUSED = "pending", "submitted", "refused"


class TriggerNotFound(LookupError):
    """No such trigger (or not the caller's)."""


def _trigger(row: Mapping[Any, Any]) -> Trigger:
    return Trigger(
        id=row["id"],
        owner=Owner(sub=row["owner_sub"], username=row["owner_name"], hpc_login=row["hpc_login"]),
        rule=TriggerRule.model_validate(row["rule"]),
        created=row["created"],
        updated=row["updated"],
        feed=FeedState(
            etag=row["etag"],
            last_modified=row["last_modified"],
            next_poll_at=row["next_poll_at"],
            last_polled=row["last_polled"],
            last_error=row["last_error"],
        ),
    )


def _activation(row: Mapping[Any, Any]) -> Activation:
    return Activation(**{c: row[c] for c in Activation.__dataclass_fields__})


def _mine(owner_sub: str | None) -> sa.ColumnElement[bool]:
    return sa.true() if owner_sub is None else _t.c.owner_sub == owner_sub


class TriggerStore:
    """Triggers and activations in the gateway's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- rules ----------------------------------------------------------------

    def create(self, trigger_id: str, owner: Owner, rule: TriggerRule) -> Trigger:
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                _t.insert().values(
                    id=trigger_id,
                    owner_sub=owner.sub,
                    owner_name=owner.username,
                    hpc_login=owner.hpc_login,
                    title=rule.title,
                    enabled=rule.enabled,
                    source=rule.source.type,
                    rule=rule.wire(),
                    created=now,
                    updated=now,
                )
            )
        return self.get(trigger_id)

    def get(self, trigger_id: str, owner_sub: str | None = None) -> Trigger:
        query = sa.select(_t).where(_t.c.id == trigger_id, _mine(owner_sub))
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise TriggerNotFound(trigger_id)
        return _trigger(row)

    def listing(self, owner_sub: str | None = None, limit: int = 1000) -> list[Trigger]:
        query = sa.select(_t).where(_mine(owner_sub)).order_by(_t.c.created.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_trigger(r) for r in conn.execute(query).mappings().all()]

    def replace(self, trigger_id: str, rule: TriggerRule, owner_sub: str | None = None) -> Trigger:
        """A new rule for the trigger; its feed is read afresh (validators dropped)."""
        values = {
            "title": rule.title,
            "enabled": rule.enabled,
            "source": rule.source.type,
            "rule": rule.wire(),
            "updated": utcnow(),
            "etag": None,
            "last_modified": None,
            "next_poll_at": None,
            "last_error": None,
        }
        with self.engine.begin() as conn:
            stmt = _t.update().where(_t.c.id == trigger_id, _mine(owner_sub)).values(**values)
            if conn.execute(stmt).rowcount != 1:
                raise TriggerNotFound(trigger_id)
        return self.get(trigger_id)

    def delete(self, trigger_id: str, owner_sub: str | None = None) -> None:
        """Remove the trigger and its activation records (its jobs stay the owner's)."""
        with self.engine.begin() as conn:
            stmt = _t.delete().where(_t.c.id == trigger_id, _mine(owner_sub))
            if conn.execute(stmt).rowcount != 1:
                raise TriggerNotFound(trigger_id)
            conn.execute(_a.delete().where(_a.c.trigger_id == trigger_id))

    # -- feeds ----------------------------------------------------------------

    def due_feeds(self, now: datetime, limit: int = 100) -> list[Trigger]:
        """Enabled triggers whose feed is due (never polled, or its next poll has passed)."""
        query = (
            sa.select(_t)
            .where(
                _t.c.enabled.is_(True),
                _t.c.source != "manual",
                sa.or_(_t.c.next_poll_at.is_(None), _t.c.next_poll_at <= now),
            )
            .order_by(_t.c.next_poll_at)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_trigger(r) for r in conn.execute(query).mappings().all()]

    def save_feed(self, trigger_id: str, feed: FeedState) -> None:
        values = {
            "etag": feed.etag,
            "last_modified": feed.last_modified,
            "next_poll_at": feed.next_poll_at,
            "last_polled": feed.last_polled,
            "last_error": feed.last_error,
        }
        with self.engine.begin() as conn:
            conn.execute(_t.update().where(_t.c.id == trigger_id).values(**values))

    # -- activations ----------------------------------------------------------

    def claim_event(
        self, trigger_id: str, event_id: str, kind: str, event: dict[str, Any], job_id: str
    ) -> Activation | None:
        """Record that ``trigger_id`` fires on ``event_id`` (pending); None if it already did."""
        now = utcnow()
        values = {
            "id": job_id,
            "trigger_id": trigger_id,
            "event_id": event_id,
            "kind": kind,
            "event": event,
            "outcome": PENDING,
            "job_id": job_id,
            "reason": None,
            "created": now,
            "updated": now,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(_a.insert().values(**values))
        except sa.exc.IntegrityError:
            return None
        return _activation(values)

    def settle(self, activation_id: str, outcome: str, reason: str | None = None) -> None:
        stmt = (
            _a.update()
            .where(_a.c.id == activation_id)
            .values(outcome=outcome, reason=reason, updated=utcnow())
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def activations(self, trigger_id: str, limit: int = 100) -> list[Activation]:
        query = (
            sa.select(_a)
            .where(_a.c.trigger_id == trigger_id)
            .order_by(_a.c.created.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_activation(r) for r in conn.execute(query).mappings().all()]

    def activation(self, trigger_id: str, event_id: str) -> Activation | None:
        """The activation of ``trigger_id`` for ``event_id``, if it fired on it."""
        query = sa.select(_a).where(_a.c.trigger_id == trigger_id, _a.c.event_id == event_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return _activation(row) if row is not None else None

    def pending(self, older_than: datetime, limit: int = 100) -> list[Activation]:
        """Activations claimed before ``older_than`` whose submission was never recorded."""
        query = (
            sa.select(_a)
            .where(_a.c.outcome == PENDING, _a.c.updated < older_than)
            .order_by(_a.c.created)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_activation(r) for r in conn.execute(query).mappings().all()]
