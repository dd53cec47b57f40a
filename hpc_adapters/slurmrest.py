"""The slurmrestd transport: :class:`SlurmRestAdapter` over httpx.

Requests carry ``X-SLURM-USER-NAME``/``X-SLURM-USER-TOKEN``; slurmrestd
(``rest_auth/jwt``) passes the JWT to slurmctld/slurmdbd, so a job submitted
with alice's token runs as alice. Tokens come from a :class:`TokenSource`
(:mod:`hpc_adapters.slurm_tokens`: :class:`MintingTokenSource` signs HS256 JWTs with the site key;
:class:`ForwardedTokenSource` presents the user's own token). Request bodies
and response parsing belong to the version's :class:`Dialect`.

How slurmrestd fails, and what we raise (checked on the real 22.05 and 24.11
servers; the dialect modules list what differs between versions):

* missing/empty auth headers -> HTTP 401; 401/403 -> AuthenticationError; 24.11
  answers a forged or expired token with HTTP 511 (errors 1007 / 7000) -> the same;
* slurmctld refusing a token -> HTTP 500 with error 5005 "Zero Bytes were
  transmitted or received" (ambiguous with a dropped connection: transient);
  slurmdbd refusing it -> HTTP 200 with error 1007 -> AuthenticationError;
* a rejected job -> HTTP 500, ``errors[].error_code`` (2000 bad partition,
  2045 bad account) -> JobRejectedError; a job id *with* errors (2042 held,
  2015 partition limits) was accepted: the errors are only logged;
* cancelling an ended-and-purged or never-known job -> both HTTP 500, error
  2017; slurmdb tells them apart (ended: no-op; unknown: InvalidJobError);
  another user's job -> 2002 -> AuthenticationError;
* 502/503/504, and slurmctld/slurmdbd communication errors -> SchedulerBusyError;
  connection errors and timeouts -> TransportError;
* a path of an API version the server does not serve -> HTTP 404 in plain text
  -> UnsupportedApiError (permanent: a configuration mismatch, not an outage);
  ``api_version: auto`` avoids it by reading ``/openapi/v3`` first;
* ``GET /jobs?update_time=T`` answers HTTP 304 with an empty body when no job
  changed since ``T`` (slurmctld's ``SLURM_NO_CHANGE_IN_DATA``): the adapter
  then reuses the list it parsed last time (see :meth:`SlurmRestAdapter.statuses`).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from hpc_adapters.base import (
    HpcIdentity,
    JobSpec,
    JobStatus,
    SiteLoad,
    Usage,
    WorkspaceFiles,
)
from hpc_adapters.errors import (
    AuthenticationError,
    InvalidJobError,
    JobRejectedError,
    SchedulerBusyError,
    TransportError,
    UnsupportedApiError,
)
from hpc_adapters.slurm.dialects import (
    AUTO,
    AccountingRecord,
    Dialect,
    Json,
    SlurmApiError,
    choose_version,
    dialect_for,
    offered_versions,
    supported_versions,
    valid_job_id,
)
from hpc_adapters.slurm.errnos import (
    ALREADY_DONE,
    INVALID_JOB,
    NOTHING_FOUND,
    classify,
    describe,
)
from hpc_adapters.slurm.load import site_load
from hpc_adapters.slurm.statuses import merge_by_name, merge_statuses, merge_usages, valid_ids
from hpc_adapters.slurm_tokens import (
    ForwardedTokenSource,
    MintingTokenSource,
    TokenSource,
    checked_login,
)

__all__ = ["ForwardedTokenSource", "MintingTokenSource", "SlurmRestAdapter", "TokenSource"]

log = logging.getLogger(__name__)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Ids per slurmdb query (keeps the URL short; still one call for any sane batch).
DB_BATCH = 200

#: slurmrestd's answer to a conditional ``GET /jobs`` when no job changed (22.05).
_NOT_MODIFIED = 304
#: 401/403, and 24.11's 511 for a token slurmctld or slurmdbd refuses.
_AUTH_STATUSES = (401, 403, 511)


@dataclass(frozen=True)
class _LiveList:
    """The last full ``GET /jobs`` answer, parsed, and when it was asked for."""

    jobs: list[JobStatus]
    #: Gateway clock (epoch seconds) just before the request was sent.
    asked_at: float


class SlurmRestAdapter:
    """A :class:`~hpc_adapters.base.SchedulerAdapter` speaking to slurmrestd.

    ``statuses``/``usages``/``find_by_name``/``check`` act as ``service_user``;
    ``submit``/``cancel`` as the given identity. Pass ``transport`` (e.g.
    ``httpx.MockTransport``) or a ready ``client`` to swap the wire in tests.

    ``api_version="auto"`` picks the newest dialect the server offers, read once
    from its ``/openapi/v3`` document at the first call (a failed probe is
    retried at the next call); a server offering none raises
    :class:`UnsupportedApiError` naming what it offers.

    ``GET /jobs`` is conditional: it carries ``update_time`` = the time the
    previous list was asked for minus ``update_slack`` seconds (Slurm times have
    one-second resolution; the slack also absorbs that much clock difference
    between this host and slurmctld), and an HTTP 304 reuses that list.
    """

    def __init__(
        self,
        site: str,
        base_url: str,
        api_version: str,
        token_source: TokenSource,
        service_user: str,
        files_factory: Callable[[HpcIdentity], WorkspaceFiles],
        timeout: float = 30.0,
        *,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
        base_environment: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        update_slack: float = 1.0,
    ) -> None:
        self.site = site
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self._dialect: Dialect | None = None if api_version == AUTO else dialect_for(api_version)
        self._dialect_lock = threading.Lock()
        self.token_source = token_source
        self.service = HpcIdentity(login=checked_login(service_user))
        self.files_factory = files_factory
        self.base_environment = dict(
            base_environment or {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        )
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout, transport=transport)
        self._clock = clock
        self.update_slack = update_slack
        self._live: _LiveList | None = None
        self._live_lock = threading.Lock()

    # ----------------------------------------------------------- dialect ----

    @property
    def dialect(self) -> Dialect:
        """The dialect spoken to this site (probed once when configured ``auto``)."""
        if self._dialect is None:
            with self._dialect_lock:
                if self._dialect is None:
                    self._dialect = dialect_for(self._probe_version())
        return self._dialect

    def _probe_version(self) -> str:
        """The newest supported version in the server's OpenAPI document."""
        status, data = self._call("GET", "/openapi/v3", self.service)
        offered = offered_versions(data)
        chosen = choose_version(offered)
        if chosen is None:
            raise UnsupportedApiError(
                f"slurmrestd at {self.base_url} (HTTP {status}) offers "
                f"{', '.join(offered) or 'no Slurm API version'}; this gateway speaks "
                f"{', '.join(supported_versions())}",
                offered=tuple(offered),
                supported=tuple(supported_versions()),
            )
        log.info("site %s: slurmrestd offers %s; speaking %s", self.site, offered, chosen)
        return chosen

    # -------------------------------------------------------------- wire ----

    def _call(
        self,
        method: str,
        path: str,
        identity: HpcIdentity,
        *,
        query: str | None = None,
        body: Json | None = None,
    ) -> tuple[int, Json]:
        """One HTTP exchange; returns (status, JSON body) or raises from the tree."""
        headers = {
            "X-SLURM-USER-NAME": checked_login(identity.login),
            "X-SLURM-USER-TOKEN": self.token_source.token_for(identity),
        }
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        try:
            resp = self._client.request(method, url, headers=headers, json=body)
        except httpx.TimeoutException as exc:
            raise TransportError(f"slurmrestd at {self.base_url} timed out: {exc}") from exc
        except httpx.HTTPError as exc:
            raise TransportError(f"cannot reach slurmrestd at {self.base_url}: {exc}") from exc
        if resp.status_code in _AUTH_STATUSES:
            raise AuthenticationError(
                f"slurmrestd refused the credentials of {identity.login!r}"
                f" (HTTP {resp.status_code})"
            )
        if resp.status_code in (502, 503, 504):
            raise SchedulerBusyError(f"slurmrestd answered HTTP {resp.status_code}")
        if resp.status_code == _NOT_MODIFIED and method == "GET":
            return _NOT_MODIFIED, {}  # conditional GET: nothing changed, no body
        try:
            data = resp.json()
        except ValueError:
            snippet = resp.text[:200].strip()
            if resp.status_code == 404:
                # slurmrestd's plain-text 404: it does not serve this API version.
                raise UnsupportedApiError(
                    f"slurmrestd at {self.base_url} does not serve {path} ({snippet!r}); "
                    f"configure api_version: auto or one of the versions it offers",
                    offered=(),
                    supported=tuple(supported_versions()),
                ) from None
            raise TransportError(
                f"slurmrestd answered HTTP {resp.status_code} without JSON: {snippet!r}"
            ) from None
        if not isinstance(data, dict):
            raise TransportError(
                f"slurmrestd answered HTTP {resp.status_code} with non-object JSON"
            )
        return resp.status_code, data

    def _query(self, path: str, query: str | None = None) -> Json:
        """A monitoring GET as the service user; Slurm errors raise (9003 = empty)."""
        status, data = self._call("GET", path, self.service, query=query)
        if status == _NOT_MODIFIED:
            raise TransportError(f"slurmrestd answered HTTP 304 to an unconditional GET {path}")
        self._raise_for_errors(path, status, data)
        return data

    def _raise_for_errors(self, path: str, status: int, data: Json) -> None:
        """Raise from the tree for the Slurm errors of a monitoring answer (9003 = empty)."""
        errors = [e for e in self.dialect.parse_errors(data) if e.code != NOTHING_FOUND]
        if errors:
            cls = classify(errors) or SchedulerBusyError
            if cls is InvalidJobError:
                cls = SchedulerBusyError
            raise cls(f"slurmrestd {path} failed (HTTP {status}): {describe(errors)}")

    def _live_jobs(self) -> list[JobStatus]:
        """Every job slurmctld knows, with ONE conditional ``GET /jobs``.

        Slurm answers HTTP 304 when no job changed since ``update_time``; the list
        parsed last time is then still exact and is returned as it is.
        """
        with self._live_lock:
            previous = self._live
        path = self.dialect.jobs_path()
        asked_at = self._clock()
        if previous is not None:
            since = int(previous.asked_at - self.update_slack)
            query = self.dialect.update_time_query(since, asked_at)
            status, data = self._call("GET", path, self.service, query=query)
            if self.dialect.not_modified(status, data):
                return previous.jobs
            self._raise_for_errors(path, status, data)
        else:
            data = self._query(path)
        jobs = self.dialect.parse_jobs(data)
        with self._live_lock:
            if self._live is None or self._live.asked_at <= asked_at:
                self._live = _LiveList(jobs, asked_at)
        return jobs

    def _accounting(self, job_ids: Sequence[str]) -> list[AccountingRecord]:
        """slurmdb records for ``job_ids``, in as few calls as DB_BATCH allows."""
        records: list[AccountingRecord] = []
        for start in range(0, len(job_ids), DB_BATCH):
            chunk = job_ids[start : start + DB_BATCH]
            data = self._query(self.dialect.db_jobs_path(), self.dialect.db_jobs_query(chunk))
            records.extend(self.dialect.parse_db_jobs(data))
        return records

    # ---------------------------------------------------------- contract ----

    def submit(self, spec: JobSpec, identity: HpcIdentity) -> str:
        """Submit as ``identity``; JobRejectedError for what Slurm refuses."""
        environment = dict(self.base_environment)
        environment.setdefault("HOME", spec.workdir)
        environment.update(spec.environment)
        bad = [k for k in environment if not _ENV_NAME.match(k)]
        if bad:
            raise JobRejectedError(f"invalid environment variable names: {bad!r}")
        try:
            body = self.dialect.submit_body(spec, environment)
        except ValueError as exc:
            raise JobRejectedError(str(exc)) from exc
        status, data = self._call("POST", self.dialect.submit_path(), identity, body=body)
        result = self.dialect.parse_submit(data)
        if result.job_id is not None:
            if result.errors:
                log.warning("job %s accepted with: %s", result.job_id, describe(result.errors))
            return result.job_id
        if not result.errors:
            raise SchedulerBusyError(f"slurmrestd answered HTTP {status} without a job id")
        detail = describe(result.errors)
        cls = classify(result.errors)
        if cls is AuthenticationError:
            raise AuthenticationError(f"Slurm refused {identity.login!r}: {detail}")
        if cls is SchedulerBusyError:
            raise SchedulerBusyError(f"submission failed, try again: {detail}")
        raise JobRejectedError(f"Slurm rejected the job: {detail}")

    def statuses(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """One (conditional) ``GET /jobs``; ids slurmctld no longer knows -> one slurmdb query."""
        wanted = valid_ids(job_ids)
        if not wanted:
            return {}
        return merge_statuses(wanted, self._live_jobs(), self._accounting)

    def find_by_name(self, name: str) -> list[JobStatus]:
        """Jobs slurmctld knows (pending, running or recently ended) named ``name``."""
        return [s for s in self._live_jobs() if s.name == name]

    def find_by_names(self, names: Sequence[str], since: datetime) -> dict[str, list[JobStatus]]:
        """One (conditional) ``GET /jobs``; names it lacks -> one slurmdb query by name
        (slurmdb's job-name filter spans all time, so ``since`` needs no parameter)."""

        def accounting(missing: list[str]) -> list[JobStatus]:
            query = self.dialect.db_jobs_by_name_query(missing)
            data = self._query(self.dialect.db_jobs_path(), query)
            return [r.status for r in self.dialect.parse_db_jobs(data)]

        return merge_by_name(names, lambda _: self._live_jobs(), accounting)

    def cancel(self, job_id: str, identity: HpcIdentity) -> None:
        """Cancel as ``identity``; an ended job is a no-op, an unknown id InvalidJobError."""
        if not valid_job_id(job_id):
            raise InvalidJobError(f"not a Slurm job id: {job_id!r}")
        status, data = self._call("DELETE", self.dialect.job_path(job_id), identity)
        errors = self.dialect.cancel_errors(data)
        if not errors and not self.dialect.cancel_reports_outcome:
            errors = self._cancel_outcome(job_id, identity)
        if not errors or all(e.code == ALREADY_DONE for e in errors):
            return
        cls = classify(errors)
        if cls is InvalidJobError:
            # Purged from slurmctld, or never existed: accounting knows which.
            if any(r.status.job_id == job_id for r in self._accounting([job_id])):
                log.info("cancel of job %s: already ended and purged; nothing to do", job_id)
                return
            raise InvalidJobError(f"Slurm does not know job {job_id}")
        if cls is AuthenticationError:
            raise AuthenticationError(f"Slurm refused to let {identity.login!r} cancel {job_id}")
        raise SchedulerBusyError(f"cancel of {job_id} failed (HTTP {status}): {describe(errors)}")

    def _cancel_outcome(self, job_id: str, identity: HpcIdentity) -> list[SlurmApiError]:
        """What a cancel did, for dialects whose DELETE answers success regardless.

        The job is read back as the service user: unknown to slurmctld -> 2017
        (accounting then tells purged from never-known); ended or cancelled -> no
        error; still active and owned by someone else -> 2002 (refused); still
        active and owned by the caller -> busy (retried later).
        """
        status, data = self._call("GET", self.dialect.job_path(job_id), self.service)
        errors = [e for e in self.dialect.parse_errors(data) if e.code != NOTHING_FOUND]
        jobs = [j for j in self.dialect.parse_jobs(data) if j.job_id == job_id]
        if not jobs:
            return errors or [SlurmApiError(INVALID_JOB, "Invalid job id specified")]
        job = jobs[0]
        if not job.state.active or "CANCELLED" in job.raw_state:
            return []
        if job.user and job.user != identity.login:
            return [SlurmApiError(2002, "Access/permission denied")]
        return [SlurmApiError(-1, f"job {job_id} is still {job.raw_state} (HTTP {status})")]

    def usages(self, job_ids: Iterable[str]) -> dict[str, Usage]:
        """Accounting of many jobs in one slurmdb query (per DB_BATCH ids)."""
        wanted = valid_ids(job_ids)
        if not wanted:
            return {}
        return merge_usages(wanted, self._accounting(wanted))

    def load(self) -> SiteLoad:
        """Every partition's CPUs and queue: ``GET /partitions`` + one ``GET /jobs``."""
        totals, default = self.dialect.parse_partitions(self._query(self.dialect.partitions_path()))
        now = self._clock()
        jobs = self.dialect.parse_queue(self._query(self.dialect.jobs_path()), now)
        return site_load(totals, jobs, default)

    def associations(self) -> dict[str, frozenset[str]]:
        """Every user's accounts at this site: one slurmdb ``GET /associations``."""
        return self.dialect.parse_associations(self._query(self.dialect.associations_path()))

    def files(self, identity: HpcIdentity) -> WorkspaceFiles:
        return self.files_factory(identity)

    def check(self) -> dict[str, str]:
        """``/ping`` and ``/diag`` as the service user; raises from the tree if down.

        Facts include ``dialect`` (the API version spoken; ``api_version`` is what
        was configured), ``slurm_release``, ``cluster`` and ``rtt_ms`` (the ping's
        round trip)."""
        facts = {"site": self.site, "base_url": self.base_url, "api_version": self.api_version}
        dialect = self.dialect
        started = time.monotonic()
        ping = self._query(dialect.ping_path())
        facts["rtt_ms"] = f"{(time.monotonic() - started) * 1000:.1f}"
        facts.update(dialect.parse_ping(ping))
        if "cluster" not in facts:
            # v0.0.38's ping does not name the cluster; its slurmdbd does when it
            # serves exactly one.
            clusters = dialect.parse_clusters(self._query(dialect.db_clusters_path()))
            if len(clusters) == 1:
                facts["cluster"] = clusters[0]
        stats: Any = self._query(self.dialect.diag_path()).get("statistics")
        if isinstance(stats, dict):
            for key in ("jobs_running", "jobs_pending", "server_thread_count", "agent_queue_size"):
                if key in stats:
                    facts[f"diag.{key}"] = str(stats[key])
        return facts

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> SlurmRestAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
