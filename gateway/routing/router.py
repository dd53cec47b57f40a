"""The router: the facts of every configured site for one request, then the policy.

Called by :meth:`gateway.jobs.service.JobService.submit` before a job row
exists. For each site, in configuration order, the hard filters run from the
cheapest (settings) to the dearest (a cached scheduler reading, a quote);
then :func:`gateway.routing.policy.decide` picks. Errors are
:mod:`gateway.errors`: a requested site that cannot take the job is 400
(403 for a budget), no eligible site 503 with ``Retry-After`` (403 when only
the user's logins or budgets stand in the way). The job service writes each
decision to the ``gateway.audit`` log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.accounting.quotes import DEFAULT_PARTITION, Pricing
from gateway.errors import BadRequest, Forbidden, QuotaExceeded, ServiceUnavailable
from gateway.identity.auth import Principal
from gateway.jobs.execute_request import SITE_MEMBER, ExecuteRequest
from gateway.jobs.records import Quote
from gateway.routing.config import RoutingSettings
from gateway.routing.health import HealthView
from gateway.routing.locality import local_inputs
from gateway.routing.policy import (
    Decision,
    NoEligibleSite,
    Refusal,
    RequestedSiteRefused,
    SiteFacts,
    decide,
)
from gateway.routing.readings import Down, SiteReadings, expected_start
from gateway.settings import SiteSettings
from gateway.sites import Sites
from hpc_adapters.base import SiteLoad
from processes.definition import ProcessDefinition, Resources

if TYPE_CHECKING:
    from gateway.accounting.budgets import BudgetStatus
    from gateway.accounting.service import Accounting

#: Refusals that are about the user, not the sites: no site is a 403, not a 503.
_USER_REFUSALS = frozenset({Refusal.LOGIN, Refusal.BUDGET})


@dataclass(frozen=True)
class Routed:
    """Where a job goes, why, the quote it keeps, and what was known of every site."""

    decision: Decision
    facts: tuple[SiteFacts, ...]
    #: The quote of every eligible site (empty without accounting).
    quotes: Mapping[str, Quote]
    requested: str | None = None

    @property
    def site(self) -> str:
        return self.decision.site

    @property
    def quote(self) -> Quote | None:
        """The quote at the chosen site (what the job keeps)."""
        return self.quotes.get(self.decision.site)

    def offers(self) -> list[dict[str, Any]]:
        """Every site as a quotation shows it: its facts, its quote, the one chosen,
        and the member that pins an execution to it."""
        offers = []
        for facts in self.facts:
            doc = {"site": facts.site, "selected": facts.site == self.site, **site_summary(facts)}
            quote = self.quotes.get(facts.site)
            if quote is not None:
                doc.update(
                    partition=quote.partition,
                    estimatedSeconds=quote.estimated_seconds,
                    coreHours=quote.core_hours,
                    maxCost=quote.max_cost,
                )
            if facts.eligible:
                doc["pin"] = {SITE_MEMBER: facts.site}
            offers.append(doc)
        return offers

    def record(self) -> dict[str, Any]:
        """What the job keeps in ``extra["routing"]`` (and its status documents show)."""
        return {
            "site": self.decision.site,
            "rule": self.decision.rule,
            "reason": self.decision.reason,
            "requested": self.requested,
            "sites": {f.site: site_summary(f) for f in self.facts},
        }


@dataclass
class _Survey:
    """What one routing decision collected beside the facts: quotes, budget refusals."""

    quotes: dict[str, Quote] = field(default_factory=dict)
    budgets: dict[str, BudgetStatus] = field(default_factory=dict)


def site_summary(facts: SiteFacts) -> dict[str, Any]:
    """One site's facts as JSON (job records, quotations)."""
    doc: dict[str, Any] = {"eligible": facts.eligible}
    if not facts.eligible:
        doc["refusal"] = facts.refusal.value if facts.refusal else None
        doc["detail"] = facts.detail
        return doc
    doc["expectedStartSeconds"] = facts.expected_start_seconds
    doc["localData"] = list(facts.local_data)
    doc["cost"] = facts.cost
    doc["pricePerCoreHour"] = facts.price_per_core_hour
    doc["currency"] = facts.currency
    return doc


class Router:
    """Gathers :class:`SiteFacts` for a request and applies the policy."""

    def __init__(
        self,
        *,
        settings: RoutingSettings,
        site_settings: Mapping[str, SiteSettings],
        sites: Sites,
        pricing: Pricing,
        default_site: str,
        accounting: Accounting | None = None,
        readings: SiteReadings | None = None,
        health: HealthView | None = None,
    ) -> None:
        self.settings = settings
        self.site_settings = dict(site_settings)
        self.sites = sites
        self.pricing = pricing
        self.default_site = default_site
        self.accounting = accounting
        self.readings = readings or SiteReadings(sites, settings)
        #: The worker's health probes: a site whose latest probe failed is down.
        self.health = health

    # -- the decision ---------------------------------------------------------

    def route(
        self,
        principal: Principal,
        process: ProcessDefinition,
        request: ExecuteRequest,
        *,
        purpose: str = "submission",
        exclude: str | None = None,
    ) -> Routed:
        """Where a job of ``process`` for ``principal`` goes; raises gateway errors.

        Only a ``submission`` refuses a site for a budget: a ``quotation``
        shows the budgets' standing instead, and a ``reroute`` (failover, the
        job was admitted already) keeps its admission. ``exclude`` is a site
        known to be down (failover).
        """
        survey = _Survey()
        facts = tuple(
            SiteFacts(name, Refusal.DOWN, "down")
            if name == exclude
            else self.facts_for(name, principal, process, request, survey, purpose=purpose)
            for name in self.site_settings
        )
        try:
            decision = decide(
                facts,
                request.site,
                default_site=self.default_site,
                tie_seconds=self.settings.queue_tie_seconds,
            )
        except RequestedSiteRefused as exc:
            if exc.refusal is Refusal.BUDGET:
                self._count_refusal(survey, exc.site)
                raise QuotaExceeded(exc.detail) from None
            raise BadRequest(exc.detail) from None
        except NoEligibleSite as exc:
            error = self._no_site(exc)
            if isinstance(error, QuotaExceeded):
                self._count_refusal(survey, next(iter(survey.budgets)))
            raise error from None
        return Routed(decision, facts, survey.quotes, request.site)

    def _count_refusal(self, survey: _Survey, site: str) -> None:
        """One refused submission in ``hpcgw_budget_refusals_total`` (not one per site)."""
        if self.accounting is not None and site in survey.budgets:
            self.accounting.count_refusal(survey.budgets[site])

    def _no_site(self, exc: NoEligibleSite) -> Exception:
        kinds = {f.refusal for f in exc.facts}
        only = exc.facts[0].detail.removeprefix("budget: ") if len(exc.facts) == 1 else None
        detail = only or f"no site can run this job now: {exc}"
        if kinds == {Refusal.BUDGET}:
            return QuotaExceeded(detail)
        if kinds <= _USER_REFUSALS:
            return Forbidden(detail)
        retry = str(self.settings.retry_after_seconds)
        return ServiceUnavailable(detail, headers={"Retry-After": retry})

    # -- the facts of one site ------------------------------------------------

    def facts_for(
        self,
        site: str,
        principal: Principal,
        process: ProcessDefinition,
        request: ExecuteRequest,
        survey: _Survey,
        *,
        purpose: str = "submission",
    ) -> SiteFacts:
        """The hard filters, cheapest first, then what ranks an eligible site."""
        settings = self.site_settings[site]
        resources = process.resources_for(dict(request.inputs))
        partition = self.pricing.partition(site, resources)
        refused = self._static_refusal(site, settings, process, resources, partition)
        if refused is not None:
            return refused
        load = None
        if len(self.site_settings) > 1:  # one site: nothing to choose, nothing to read
            refused, load = self._reading_refusal(site, principal)
            if refused is not None:
                return refused
        price = self.pricing.price(site, partition)
        cost = price * resources.cores * resources.walltime_minutes / 60.0
        if self.accounting is not None:
            quote = self.accounting.quote(principal, process, request, site=site, purpose=purpose)
            survey.quotes[site] = quote
            status = None
            if purpose == "submission":
                status = self.accounting.budget_refusal(principal, quote)
            if status is not None:
                survey.budgets[site] = status
                return SiteFacts(site, Refusal.BUDGET, f"budget: {status.refusal()}")
            cost = quote.cost
        part_load = None
        if load is not None:
            part_load = load.partition(None if partition == DEFAULT_PARTITION else partition)
        return SiteFacts(
            site,
            local_data=local_inputs(request.inputs, settings.data),
            expected_start_seconds=expected_start(part_load, resources.cores),
            cost=cost,
            price_per_core_hour=price,
            currency=self.pricing.settings.currency,
        )

    def _reading_refusal(
        self, site: str, principal: Principal
    ) -> tuple[SiteFacts | None, SiteLoad | None]:
        """Down (its last probe failed, or its cached load or associations are unreadable)
        or no association there."""
        probe = self.health.down(site) if self.health is not None else None
        if probe is not None:
            since = probe.since.strftime("%H:%M:%S")
            return SiteFacts(site, Refusal.DOWN, f"down since {since} UTC ({probe.detail})"), None
        load = self.readings.load(site)
        if isinstance(load, Down):
            return SiteFacts(site, Refusal.DOWN, f"down ({load.detail})"), None
        login = principal.hpc_login or ""
        if self.settings.check_associations:
            assocs = self.readings.associations(site)
            if isinstance(assocs, Down):
                return SiteFacts(site, Refusal.DOWN, f"accounting down ({assocs.detail})"), None
            if assocs.value and login not in assocs.value:
                refusal = SiteFacts(site, Refusal.LOGIN, f"no Slurm association for '{login}'")
                return refusal, None
        return None, load.value

    def _static_refusal(
        self,
        site: str,
        settings: SiteSettings,
        process: ProcessDefinition,
        resources: Resources,
        partition: str,
    ) -> SiteFacts | None:
        if not settings.enabled:
            return SiteFacts(site, Refusal.DISABLED, "disabled by the operator")
        allowed = process.hpc.sites
        if allowed and site not in allowed:
            return SiteFacts(
                site, Refusal.PROCESS, f"process '{process.id}' is not installed there"
            )
        if process.hpc.container and settings.container_runtime is None:
            return SiteFacts(
                site,
                Refusal.PROCESS,
                f"process '{process.id}' runs in a container and the site declares no "
                "container runtime",
            )
        if process.hpc.toil and settings.toil is None:
            return SiteFacts(
                site,
                Refusal.PROCESS,
                f"process '{process.id}' runs its steps with toil and the site declares no toil",
            )
        if settings.partitions and partition != DEFAULT_PARTITION:
            if partition not in settings.partitions:
                return SiteFacts(
                    site, Refusal.PARTITION, f"partition '{partition}' is not offered there"
                )
        return None
