"""Where slurmrestd tokens come from: :class:`TokenSource` and its two kinds.

slurmrestd (``rest_auth/jwt``) passes each request's token to slurmctld and
slurmdbd, so the token decides whose job it is. :class:`MintingTokenSource`
signs short-lived HS256 JWTs (``sun``, ``iat``, ``exp``) with the site's Slurm
JWT key (trusted-service mode); :class:`ForwardedTokenSource` presents the
user's own token. Login names are checked before they reach a header.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Protocol

import jwt

from hpc_adapters.base import HpcIdentity
from hpc_adapters.errors import AuthenticationError

_LOGIN = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")


class TokenSource(Protocol):
    """Gives the slurmrestd token to present for an identity."""

    def token_for(self, identity: HpcIdentity) -> str:
        """Return a JWT for ``identity.login``; AuthenticationError if there is none."""


class MintingTokenSource:
    """Mints HS256 JWTs (``sun``, ``iat``, ``exp``) with the site's Slurm JWT key.

    Tokens are cached per login and re-minted ``renew_before`` seconds before
    they expire. The key file is read once, at construction.
    """

    def __init__(
        self,
        key_file: str,
        lifespan: int = 900,
        *,
        renew_before: int = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            with open(key_file, "rb") as fh:
                self._key = fh.read()
        except OSError as exc:
            raise AuthenticationError(f"cannot read the Slurm JWT key: {exc.strerror}") from exc
        if len(self._key) < 16:
            raise AuthenticationError(f"the Slurm JWT key in {key_file} is too short")
        self.lifespan = lifespan
        self.renew_before = min(renew_before, lifespan // 2)
        self._clock = clock
        self._cache: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()

    def token_for(self, identity: HpcIdentity) -> str:
        login = checked_login(identity.login)
        now = int(self._clock())
        with self._lock:
            cached = self._cache.get(login)
            if cached is not None and cached[1] - self.renew_before > now:
                return cached[0]
            exp = now + self.lifespan
            token = jwt.encode({"sun": login, "iat": now, "exp": exp}, self._key, "HS256")
            self._cache[login] = (token, exp)
            return token


class ForwardedTokenSource:
    """Presents ``identity.token`` (forward mode); else asks ``fallback`` if given.

    Seam for the identity-forwarding work: a site that trusts the portal's
    tokens gets them as they are; until then the fallback mints.
    """

    def __init__(self, fallback: TokenSource | None = None) -> None:
        self.fallback = fallback

    def token_for(self, identity: HpcIdentity) -> str:
        if identity.token:
            return identity.token
        if self.fallback is not None:
            return self.fallback.token_for(identity)
        raise AuthenticationError(f"no forwarded token for {identity.login!r}")


def checked_login(login: str) -> str:
    if not _LOGIN.match(login):
        raise AuthenticationError(f"not a valid HPC login name: {login!r}")
    return login
