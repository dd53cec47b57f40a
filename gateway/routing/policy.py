"""The routing policy: which site runs a job, and why -- pure, no I/O.

The router (:mod:`gateway.routing.router`) gathers one :class:`SiteFacts` per
configured site; :func:`decide` applies the documented order
(docs/federation.md):

1. **hard filters** -- a site with a ``refusal`` (disabled, down, process not
   installed there, partition not offered, no association for the user,
   budget) is out;
2. **the client's choice** (``hpcSite``) wins when the site passed the filters;
   a refused or unknown requested site is :class:`RequestedSiteRefused` (400);
3. **data locality** -- the sites holding the most inputs by reference;
4. **expected start** -- the sites starting soonest (within ``tie_seconds``);
5. **price** -- the cheapest quote;
6. **default site** -- still tied: ``default_site``, else the first configured.

No eligible site at all is :class:`NoEligibleSite` (503 + Retry-After).
Every decision carries a short reason a person can read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum


class Refusal(StrEnum):
    """Why a hard filter kept a site out (the kind decides the HTTP answer)."""

    UNKNOWN = "unknown"
    DISABLED = "disabled"
    DOWN = "down"
    PROCESS = "process"
    PARTITION = "partition"
    LOGIN = "login"
    BUDGET = "budget"


@dataclass(frozen=True)
class SiteFacts:
    """What routing knows of one site for one request."""

    site: str
    #: Why a hard filter refused the site (None: eligible) and the words for it.
    refusal: Refusal | None = None
    detail: str = ""
    #: Inputs whose data is local to the site (human-readable, e.g. ``input 'image'``).
    local_data: tuple[str, ...] = ()
    #: Seconds until the job would start (None: the site could not tell).
    expected_start_seconds: float | None = None
    #: Quoted cost of the run there, and the price per core-hour behind it.
    cost: float = 0.0
    price_per_core_hour: float = 0.0
    currency: str = "EUR"

    @property
    def eligible(self) -> bool:
        return self.refusal is None


@dataclass(frozen=True)
class Decision:
    """The chosen site, the rule that chose it and a reason for people."""

    site: str
    rule: str
    reason: str


class RequestedSiteRefused(Exception):
    """The site the client asked for cannot take the job."""

    def __init__(self, site: str, refusal: Refusal, detail: str) -> None:
        super().__init__(detail)
        self.site = site
        self.refusal = refusal
        self.detail = detail


class NoEligibleSite(Exception):
    """Every site was refused by a hard filter; ``facts`` say why, site by site."""

    def __init__(self, facts: Sequence[SiteFacts]) -> None:
        self.facts = tuple(facts)
        super().__init__(refusals_text(self.facts))


def refusals_text(facts: Sequence[SiteFacts]) -> str:
    """``hpcgw: down (...); mesocentre: process 'x' is not installed there``."""
    return "; ".join(f"{f.site}: {f.detail}" for f in facts if not f.eligible)


def minutes(seconds: float) -> str:
    """A wait as people say it: ``0 min``, ``14 min``, ``2.5 h``."""
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} h"
    return f"{round(seconds / 60)} min"


def decide(
    facts: Sequence[SiteFacts],
    requested: str | None,
    *,
    default_site: str,
    tie_seconds: float = 60.0,
) -> Decision:
    """Apply the policy to ``facts`` (in configuration order)."""
    by_name = {f.site: f for f in facts}
    if requested is not None:
        chosen = by_name.get(requested)
        if chosen is None:
            known = ", ".join(by_name) or "none"
            raise RequestedSiteRefused(
                requested, Refusal.UNKNOWN, f"unknown site '{requested}' (sites: {known})"
            )
        if chosen.refusal is not None:
            raise RequestedSiteRefused(
                requested,
                chosen.refusal,
                f"site '{requested}' cannot take this job: {chosen.detail}",
            )
        return Decision(requested, "requested", f"{requested} requested by the client")
    eligible = [f for f in facts if f.eligible]
    if not eligible:
        raise NoEligibleSite(facts)
    if len(eligible) == 1:
        only = eligible[0].site
        why = refusals_text(facts)
        return Decision(only, "only", f"only eligible site ({why})" if why else "only site")
    for rule in (_by_data, _by_queue(tie_seconds), _by_price):
        kept, reason = rule(eligible)
        if len(kept) == 1:
            return Decision(kept[0].site, reason[0], reason[1])
        eligible = kept
    names = [f.site for f in eligible]
    site = default_site if default_site in names else names[0]
    return Decision(site, "default", f"no difference between {', '.join(names)}: default site")


#: A rule keeps the best sites and says why (a reason only when one site is left).
_Narrowing = tuple[list[SiteFacts], tuple[str, str]]
_Rule = Callable[[list[SiteFacts]], _Narrowing]


def _by_data(sites: list[SiteFacts]) -> _Narrowing:
    best = max(len(f.local_data) for f in sites)
    kept = [f for f in sites if len(f.local_data) == best] if best else sites
    if len(kept) == 1:
        what = ", ".join(kept[0].local_data)
        return kept, ("data", f"data local to {kept[0].site} ({what})")
    return kept, ("data", "")


def _by_queue(tie_seconds: float) -> _Rule:
    def rule(sites: list[SiteFacts]) -> _Narrowing:
        known = [f for f in sites if f.expected_start_seconds is not None]
        if not known:
            return sites, ("queue", "")
        soonest = min(f.expected_start_seconds or 0.0 for f in known)
        kept = [f for f in known if (f.expected_start_seconds or 0.0) - soonest <= tie_seconds]
        if len(kept) == 1:
            winner = kept[0]
            others = [f for f in sites if f is not winner]
            versus = " vs ".join(f"{f.site} {_start(f)}" for f in others)
            start = minutes(winner.expected_start_seconds or 0.0)
            return kept, ("queue", f"queue: {winner.site} {start} vs {versus}")
        return kept, ("queue", "")

    return rule


def _start(facts: SiteFacts) -> str:
    seconds = facts.expected_start_seconds
    return "unknown" if seconds is None else minutes(seconds)


def _by_price(sites: list[SiteFacts]) -> _Narrowing:
    cheapest = min(f.cost for f in sites)
    kept = [f for f in sites if f.cost <= cheapest + 1e-9]
    if len(kept) == 1:
        w = kept[0]
        versus = " vs ".join(f"{f.site} {f.price_per_core_hour:g}" for f in sites if f is not w)
        return kept, (
            "price",
            f"cheapest: {w.site} {w.price_per_core_hour:g} vs {versus} {w.currency}/core-hour",
        )
    return kept, ("price", "")
