"""Settings of routing (``routing:`` in the YAML file, ``HPCGW_ROUTING__<KEY>``).

Kept in its own module, importing nothing from the gateway, so
:mod:`gateway.settings` only names it. See ``docs/federation.md``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class RoutingSettings(BaseModel):
    """How jobs are sent to sites: caches of scheduler facts and the policy's thresholds."""

    #: Seconds one reading of a site's queue (one or two scheduler calls) serves
    #: every routing decision: never one scheduler call per job.
    queue_cache_seconds: float = Field(default=5.0, ge=0)
    #: Seconds a site's associations (who may run there, one call) are reused.
    associations_cache_seconds: float = Field(default=60.0, ge=0)
    #: Refuse a site where the user has no Slurm association (one slurmdb /
    #: sacctmgr call per site per cache period).
    check_associations: bool = True
    #: Expected starts closer than this are equal, so price decides.
    queue_tie_seconds: float = Field(default=60.0, ge=0)
    #: Seconds between health probes of each site (the worker's probe stage).
    probe_seconds: float = Field(default=15.0, gt=0)
    #: ``Retry-After`` of a 503 when no site is eligible.
    retry_after_seconds: int = Field(default=60, ge=1)
