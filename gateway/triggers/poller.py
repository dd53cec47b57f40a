"""The worker stage that polls trigger feeds: one pass per cycle, under a named lease.

No thread per trigger: :meth:`FeedPoller.run_once` is one of the worker's
stages. The worker holding the ``trigger-poller`` lease (any number of
workers may run; one polls at a time) reads each *due* feed -- every feed has
its own interval, kept in ``triggers.next_poll_at`` -- through the egress
guard, like every request made on a user's behalf:

* ``fdsn-event``: ``GET`` with ``If-None-Match`` / ``If-Modified-Since`` from
  the previous answer (a ``304`` costs the provider nothing), parsed by
  :func:`~gateway.triggers.events.parse_fdsn_geojson`;
* ``stac-search``: ``POST`` of a STAC API item search (collections, the
  rule's bbox, a datetime range from ``criteria.after``), see
  :mod:`gateway.triggers.stac_search`.

Each matching event fires the trigger through
:meth:`~gateway.triggers.service.TriggerService.fire`, which dedupes in the
database, so a lease that lapses mid-pass (two pollers for a moment) still
fires nothing twice. A feed that fails (refused by the egress policy,
unreachable, not a FeatureCollection) is recorded on its trigger
(``lastError``, shown by ``GET /triggers/{id}``), logged and counted, and
tried again later; the other triggers are not held up.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import httpx
from prometheus_client import Counter

from gateway.egress import EgressError, EgressPolicy, guarded_client
from gateway.jobs.store import JobStore, utcnow
from gateway.triggers.config import TriggerSettings
from gateway.triggers.events import Event, FeedError, matches, parse_fdsn_geojson, read_limited
from gateway.triggers.records import FdsnSource, FeedState, StacSearchSource, Trigger
from gateway.triggers.service import PENDING_GRACE, TriggerService
from gateway.triggers.stac_search import search_events

log = logging.getLogger(__name__)

LEASE_NAME = "trigger-poller"

POLLS = Counter(
    "hpcgw_trigger_polls",
    "Trigger feed polls, by outcome (changed, unchanged, error).",
    ["outcome"],
)
FIRED = Counter(
    "hpcgw_trigger_activations",
    "Trigger activations, by outcome (submitted, refused).",
    ["outcome"],
)


class FeedPoller:
    """Polls the due feeds of enabled triggers and fires them on matching events."""

    def __init__(
        self,
        *,
        service: TriggerService,
        jobs_store: JobStore,
        policy: EgressPolicy,
        settings: TriggerSettings,
        worker_id: str,
    ) -> None:
        self.service = service
        self.store = service.store
        self.jobs_store = jobs_store
        self.policy = policy
        self.settings = settings
        self.worker_id = worker_id

    def run_once(self) -> int:
        """One pass over the due feeds (if this worker holds the lease); events fired."""
        if not self.settings.enabled:
            return 0
        # reads first: an idle gateway (nothing due) writes nothing, not even the lease
        now = utcnow()
        if not self.store.due_feeds(now, 1) and not self.store.pending(now - PENDING_GRACE, 1):
            return 0
        if not self.jobs_store.acquire_lease(
            LEASE_NAME, self.worker_id, self.settings.lease_seconds
        ):
            return 0
        fired = self.service.recover()
        for trigger in self.store.due_feeds(utcnow(), self.settings.batch):
            fired += self.poll(trigger)
        return fired

    def poll(self, trigger: Trigger) -> int:
        """Read ``trigger``'s feed once, fire on what matches; the activations made."""
        source = trigger.rule.source
        assert isinstance(source, FdsnSource | StacSearchSource)
        interval = max(source.interval_seconds, self.settings.min_interval_seconds)
        now = utcnow()
        feed = trigger.feed
        try:
            if isinstance(source, FdsnSource):
                events, feed, note = self._fdsn(trigger, source)
            else:
                events, note = self._stac(trigger, source)
        except (FeedError, EgressError, httpx.HTTPError) as exc:
            detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
            POLLS.labels("error").inc()
            log.warning("trigger %s: feed %s failed: %s", trigger.id, source.url, detail)
            retry = max(self.settings.error_retry_seconds, interval)
            self._schedule(trigger, feed, retry, f"{now.isoformat()}: {detail}")
            return 0
        POLLS.labels("unchanged" if events is None else "changed").inc()
        fired = 0
        for event in events or []:
            fired += self._consider(trigger, event, source.type)
        self._schedule(trigger, feed, interval, note)
        return fired

    def _schedule(
        self, trigger: Trigger, feed: FeedState, delay: float, problem: str | None
    ) -> None:
        """Record the poll: the feed's validators, its next poll and its problem (or none)."""
        now = utcnow()
        self.store.save_feed(
            trigger.id,
            FeedState(
                etag=feed.etag,
                last_modified=feed.last_modified,
                next_poll_at=now + timedelta(seconds=delay),
                last_polled=now,
                last_error=problem,
            ),
        )

    def _consider(self, trigger: Trigger, event: Event, kind: str) -> int:
        why_not = matches(event, trigger.rule.criteria)
        if why_not is not None:
            log.debug("trigger %s: event %s does not match: %s", trigger.id, event.id, why_not)
            return 0
        activation = self.service.fire(trigger, event, "feed" if kind == "fdsn-event" else "stac")
        if activation is None:
            return 0
        FIRED.labels(activation.outcome).inc()
        return 1

    def _client(self) -> httpx.Client:
        """A guarded client whose request also ends within ``timeout_seconds`` overall
        (a feed that trickles cannot hold up the worker loop)."""
        timeout = self.settings.timeout_seconds
        return guarded_client(self.policy, timeout=timeout, deadline=time.monotonic() + timeout)

    def _fdsn(
        self, trigger: Trigger, source: FdsnSource
    ) -> tuple[list[Event] | None, FeedState, str | None]:
        """The feed's events (None: unchanged since the last poll), its new state, a note."""
        headers = {"Accept": "application/geo+json, application/json"}
        if trigger.feed.etag:
            headers["If-None-Match"] = trigger.feed.etag
        if trigger.feed.last_modified:
            headers["If-Modified-Since"] = trigger.feed.last_modified
        with self._client() as client, client.stream("GET", source.url, headers=headers) as resp:
            if resp.status_code == 304:
                return None, trigger.feed, None
            if resp.status_code == 204:  # FDSN: "no events match" (nodata=204)
                body = b'{"type": "FeatureCollection", "features": []}'
            elif resp.status_code != 200:
                raise FeedError(f"the feed answered HTTP {resp.status_code}")
            else:
                body = read_limited(resp, self.settings.max_feed_bytes)
            state = FeedState(
                etag=resp.headers.get("ETag"), last_modified=resp.headers.get("Last-Modified")
            )
        events, bad = parse_fdsn_geojson(body, trigger.rule.area_half_width_degrees)
        note = f"{bad} feature(s) of the last answer could not be read" if bad else None
        return events, state, note

    def _stac(self, trigger: Trigger, source: StacSearchSource) -> tuple[list[Event], str | None]:
        with self._client() as client:
            return search_events(client, source, trigger.rule, self.settings.max_feed_bytes)
