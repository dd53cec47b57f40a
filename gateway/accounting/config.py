"""Settings of accounting: prices, cost models, budgets, usage recording and metrics.

One section of the configuration tree (``accounting:`` in the YAML file,
``HPCGW_ACCOUNTING__<KEY>`` in the environment), kept in its own module so
:mod:`gateway.settings` only names it. This module imports nothing from the
gateway (``gateway.settings`` imports it). See ``docs/accounting.md``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

#: Key of a price entry that applies to every partition of a site (or every site).
ANY = "*"


class ProcessCostModel(BaseModel):
    """Run time of one process as a function of its input sizes (when they are known).

    ``estimated seconds = base_seconds + seconds_per_input_mb * MB of the inputs``,
    bounded by the process's walltime. Only inline input values have a known size;
    inputs given by reference are sized 0 (the history or the walltime applies
    when no input has a known size).
    """

    base_seconds: float = Field(default=0.0, ge=0)
    seconds_per_input_mb: float = Field(default=0.0, ge=0)
    #: Inputs whose size counts (empty: every input).
    inputs: list[str] = Field(default_factory=list)


class MetricsSettings(BaseModel):
    """The Prometheus endpoint ``/metrics``."""

    enabled: bool = True
    #: Serve ``/metrics`` without an OIDC token (Prometheus scrapers have none).
    public: bool = True
    #: File holding a static bearer token scrapers must present (Prometheus
    #: ``authorization.credentials_file``); unset: no token needed.
    bearer_token_file: str | None = None
    #: Directory for prometheus-client's multiprocess mode, used by ``hpcgw serve``
    #: and ``hpcgw worker`` when ``PROMETHEUS_MULTIPROC_DIR`` is not already set, so
    #: that event metrics (adapter calls, staging bytes) of every gunicorn worker and
    #: of the job worker are summed. ``null`` disables it (single process only).
    multiprocess_dir: str | None = "var/prometheus"


class AccountingSettings(BaseModel):
    """Cost quotes, usage records from Slurm accounting, budgets and metrics."""

    enabled: bool = True
    currency: str = Field(default="EUR", min_length=1, max_length=8)
    #: Price of one core-hour (or billing-unit hour) where no price below applies.
    default_price_per_core_hour: float = Field(default=0.05, ge=0)
    #: ``site -> partition -> price per core-hour``; partition ``"*"`` is any
    #: partition of that site, site ``"*"`` any site. A job without a partition
    #: runs in the site's ``default_partition`` (key ``"default"`` when unset).
    prices: dict[str, dict[str, float]] = Field(default_factory=dict)
    #: Slurm ``TRESBillingWeights`` of the site, e.g. ``{"cpu": 1.0, "mem": 0.25}``
    #: (``mem`` per GB). When set, cost = billing units x hours x price, and the
    #: actual cost uses Slurm's own ``billing`` TRES. Core-hours are never weighted.
    billing_weights: dict[str, float] = Field(default_factory=dict)
    #: How weighted TRES combine (Slurm ``PriorityFlags=MAX_TRES`` -> ``max``).
    billing_mode: Literal["sum", "max"] = "sum"
    #: How many recent successful runs of a process the history estimate uses.
    history_runs: int = Field(default=20, ge=1, le=1000)
    #: Fewest runs before the history is trusted (else the walltime is quoted).
    history_min_runs: int = Field(default=3, ge=1)
    #: Seconds an API process reuses a process's run history for quotes (0: read it
    #: for every quote). Usage recorded by a worker in the same process refreshes it.
    history_cache_seconds: float = Field(default=60.0, ge=0)
    #: Per-process models of run time from input sizes (process id -> model).
    cost_models: dict[str, ProcessCostModel] = Field(default_factory=dict)
    #: Slurm account charged when a job names none and the user's is unknown.
    default_project: str = "gep"
    #: Refuse submissions that would exceed a budget.
    enforce_budgets: bool = True
    #: What a submission reserves against budgets: the estimate, or the worst
    #: case (cores x walltime limit).
    budget_basis: Literal["estimate", "limit"] = "estimate"
    #: First wait after a job ends before its accounting is read (slurmdbd lags).
    usage_delay_seconds: float = Field(default=1.0, ge=0)
    #: Backoff of usage reads that found no final record yet (doubles up to the max).
    usage_retry_seconds: float = Field(default=2.0, gt=0)
    usage_retry_max_seconds: float = Field(default=60.0, gt=0)
    #: How often finished jobs without a usage record are looked for (e.g.
    #: dismissed jobs, which never pass the finaliser), and how far back.
    usage_sweep_seconds: float = Field(default=30.0, gt=0)
    usage_sweep_lookback_hours: float = Field(default=72.0, gt=0)
    #: A job whose final accounting record is still missing this long after its
    #: end is given up (logged as an error, never recorded with guessed numbers).
    #: Longer than the sweep look-back, so the sweep does not queue it again.
    usage_give_up_hours: float = Field(default=168.0, gt=0)
    #: One worker at a time reads usage, under a named lease of this length; a
    #: worker killed while holding it is replaced after at most this long.
    usage_lease_seconds: float = Field(default=60.0, gt=0)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @field_validator("prices")
    @classmethod
    def _non_negative(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for site, table in value.items():
            for partition, price in table.items():
                if price < 0:
                    raise ValueError(f"prices.{site}.{partition} must not be negative")
        return value
