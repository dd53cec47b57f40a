"""The accounting facade the composition root wires in.

:class:`Accounting` gives the job service its admission hook (quote + budget
check, see :meth:`Accounting.admit`), the HTTP surface its quotations and
reports, and the worker its usage recorder and finaliser hook.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from gateway.accounting.budgets import (
    ALL_SITES,
    BudgetChecker,
    BudgetStatus,
    BudgetStore,
    Scope,
)
from gateway.accounting.cache import TtlCache
from gateway.accounting.config import AccountingSettings
from gateway.accounting.metrics import QUOTES, REFUSALS, DatabaseCollector
from gateway.accounting.quotes import Estimator, Pricing, Quote
from gateway.accounting.steps import StepNamer
from gateway.accounting.usage import UsageRecorder
from gateway.errors import Forbidden, QuotaExceeded
from gateway.identity.auth import Principal
from gateway.jobs.execute_request import ExecuteRequest
from gateway.jobs.store import JobStore
from gateway.settings import SiteSettings
from gateway.sites import Sites
from processes.definition import ProcessDefinition

log = logging.getLogger(__name__)

#: Seconds a user's Slurm accounts (from the user sync's identity table) are reused.
ACCOUNTS_TTL_SECONDS = 30.0


class Accounting:
    """Quotes, budgets, usage recording and metrics over one job store."""

    def __init__(
        self,
        settings: AccountingSettings,
        engine: Engine,
        store: JobStore,
        sites: Sites,
        site_settings: Mapping[str, SiteSettings],
        default_site: str,
        step_name: StepNamer | None = None,
    ) -> None:
        self.settings = settings
        #: Names a job's step jobs (toil) so that their usage is the job's too.
        self.step_name = step_name
        self.engine = engine
        self.store = store
        self.sites = sites
        self.default_site = default_site
        self.site_names = frozenset(site_settings)
        self.pricing = Pricing(settings, site_settings)
        self.estimator = Estimator(
            engine, settings, self.pricing, history_ttl=settings.history_cache_seconds
        )
        self._accounts: TtlCache[str, list[str]] = TtlCache(ACCOUNTS_TTL_SECONDS)
        self.budgets = BudgetStore(engine)
        self.checker = BudgetChecker(engine, self.budgets, settings.budget_basis)
        self.collector = DatabaseCollector(engine, settings.currency)

    # -- who is charged -------------------------------------------------------

    def project_for(self, principal: Principal) -> str:
        """The Slurm account a job of ``principal`` is charged to.

        Jobs are submitted without ``--account``, so Slurm charges the user's
        default account: the only account the user sync recorded for the user,
        the configured ``default_project`` if it is one of several, else that
        setting when nothing is known. The accounts are cached for
        :data:`ACCOUNTS_TTL_SECONDS` (the user sync changes them rarely).
        """
        sub = principal.sub
        try:
            accounts = self._accounts.get(sub, lambda: self._accounts_of(sub))
        except SQLAlchemyError:  # not cached: asked again next time
            accounts = []
        default = self.settings.default_project
        if len(accounts) == 1:
            return accounts[0]
        if accounts and default not in accounts:
            return sorted(accounts)[0]
        return default

    def _accounts_of(self, sub: str) -> list[str]:
        """The accounts the user sync recorded for ``sub`` (raises SQLAlchemyError)."""
        try:
            from gateway.identity.identity_map import IdentityStore
        except ImportError:  # identity mapping not available in this build
            return []
        identity = IdentityStore(self.engine).get(sub)
        return list(identity.accounts) if identity is not None else []

    def budget_site(self, value: object) -> str:
        """A budget's ``site`` from a request: a configured site, or ``*`` (the default)."""
        if value is None or value == "" or value == ALL_SITES:
            return ALL_SITES
        if isinstance(value, str) and value in self.site_names:
            return value
        known = ", ".join(sorted(self.site_names))
        raise ValueError(
            f"unknown site {str(value)[:64]!r}: a budget's site is one of {known} or '*'"
        )

    # -- quotes and admission -------------------------------------------------

    def quote(
        self,
        principal: Principal,
        process: ProcessDefinition,
        request: ExecuteRequest,
        *,
        purpose: str = "quotation",
        site: str | None = None,
    ) -> Quote:
        """The quote of a run at ``site`` (the default site when None)."""
        project = self.project_for(principal)
        QUOTES.labels(process=process.id, purpose=purpose).inc()
        return self.estimator.quote(process, request.inputs, site or self.default_site, project)

    def budget_statuses(
        self, principal: Principal, quote: Quote, now: datetime | None = None
    ) -> list[BudgetStatus]:
        """Every budget that applies to the caller at the quote's site, with ``quote`` added."""
        if not principal.hpc_login:
            return []
        reserved = quote.reserved(self.settings.budget_basis)
        return self.checker.statuses(
            self._subjects(principal, quote),
            reserved,
            self.settings.default_project,
            now,
            site=quote.site or None,
        )

    def budget_refusal(self, principal: Principal, quote: Quote) -> BudgetStatus | None:
        """The first budget ``quote`` would exceed, when budgets are enforced; else None."""
        if not self.settings.enforce_budgets:
            return None
        for status in self.budget_statuses(principal, quote):
            if status.exceeded:
                return status
        return None

    @staticmethod
    def count_refusal(status: BudgetStatus) -> None:
        """Count one refused submission (``hpcgw_budget_refusals_total``)."""
        REFUSALS.labels(scope=status.budget.scope.value, period=status.budget.period.value).inc()

    def admit(
        self,
        principal: Principal,
        process: ProcessDefinition,
        request: ExecuteRequest,
        site: str | None = None,
    ) -> Quote | None:
        """Quote the run at ``site`` and check the budgets (the router does this per site).

        Refuses it with :class:`QuotaExceeded` (403, no job row) if it would
        exceed a budget. Returns the quote the job records.
        """
        if not self.settings.enabled:
            return None
        if not principal.hpc_login:
            raise Forbidden(f"user '{principal.username}' is not provisioned on the HPC cluster")
        quote = self.quote(principal, process, request, purpose="submission", site=site)
        status = self.budget_refusal(principal, quote)
        if status is not None:
            self.count_refusal(status)
            log.info("refused %s for %s: %s", process.id, principal.username, status.refusal())
            raise QuotaExceeded(status.refusal())
        return quote

    @staticmethod
    def _subjects(principal: Principal, quote: Quote) -> list[tuple[Scope, str]]:
        return [(Scope.USER, principal.hpc_login or ""), (Scope.PROJECT, quote.project)]

    # -- worker side ----------------------------------------------------------

    def recorder(self, worker_id: str) -> UsageRecorder:
        """A usage recorder for one worker (its finaliser hook and its cycle stage)."""
        return UsageRecorder(
            self.engine,
            self.store,
            self.sites,
            self.pricing,
            self.settings,
            worker_id,
            on_recorded=lambda job: self.estimator.forget_history(job.process_id),
            step_name=self.step_name,
        )
