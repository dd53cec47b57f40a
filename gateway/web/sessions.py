"""Server-side browser sessions: a random id in an HttpOnly cookie, the rest in the database.

The cookie carries only a random id (256 bits); the table keeps its SHA-256, so
a database dump holds no usable session. A session holds the user's tokens
(never sent to the browser), a CSRF token for its forms and, while a sign-in is
under way, the PKCE verifier, the ``state`` and the page to come back to.
Sessions live in the database so that every gunicorn worker (and a restart)
sees them. Signing in replaces the session (a new id), so an id planted before
sign-in is worthless afterwards.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.web.tables import browser_sessions

COOKIE = "hpcgw_session"
#: Form field and header carrying the CSRF token.
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class BrowserSession:
    """One session as read: its cookie id, data and end."""

    id: str
    expires: datetime
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def csrf(self) -> str:
        return str(self.data.get("csrf", ""))

    def csrf_ok(self, presented: str | None) -> bool:
        """Whether ``presented`` is this session's CSRF token (constant-time compare)."""
        return bool(presented) and hmac.compare_digest(self.csrf, str(presented))

    @property
    def signed_in(self) -> bool:
        return isinstance(self.data.get("tokens"), dict)

    @property
    def tokens(self) -> dict[str, Any]:
        tokens = self.data.get("tokens")
        return tokens if isinstance(tokens, dict) else {}

    @property
    def username(self) -> str | None:
        name = self.data.get("username")
        return name if isinstance(name, str) else None


class SessionStore:
    """Create, read, update and end browser sessions in the ``browser_sessions`` table."""

    def __init__(self, engine: Engine, lifetime: timedelta) -> None:
        self._engine = engine
        self.lifetime = lifetime

    def create(self, data: dict[str, Any], lifetime: timedelta | None = None) -> BrowserSession:
        """A new session holding ``data`` (plus a fresh CSRF token)."""
        session_id = secrets.token_urlsafe(32)
        now = _now()
        session = BrowserSession(
            id=session_id,
            expires=now + (lifetime or self.lifetime),
            data={**data, "csrf": secrets.token_urlsafe(32)},
        )
        with self._engine.begin() as conn:
            conn.execute(
                sa.insert(browser_sessions).values(
                    id_hash=_hash(session_id),
                    data=session.data,
                    created=now,
                    expires=session.expires,
                )
            )
            # the table holds no more than the live sessions
            conn.execute(sa.delete(browser_sessions).where(browser_sessions.c.expires < now))
        return session

    def get(self, session_id: str | None) -> BrowserSession | None:
        """The live session of cookie value ``session_id``, or None."""
        if not session_id or len(session_id) > 128:
            return None
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(browser_sessions.c.data, browser_sessions.c.expires).where(
                    browser_sessions.c.id_hash == _hash(session_id)
                )
            ).first()
        if row is None or row.expires <= _now():
            return None
        return BrowserSession(id=session_id, expires=row.expires, data=dict(row.data))

    def save(self, session: BrowserSession) -> None:
        """Write ``session.data`` back (after a token refresh, a draft kept, ...)."""
        with self._engine.begin() as conn:
            conn.execute(
                sa.update(browser_sessions)
                .where(browser_sessions.c.id_hash == _hash(session.id))
                .values(data=session.data)
            )

    def end(self, session_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                sa.delete(browser_sessions).where(browser_sessions.c.id_hash == _hash(session_id))
            )
