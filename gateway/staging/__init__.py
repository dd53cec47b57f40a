"""Input staging: references (http(s), S3, STAC Items, local roots) -> job workspace.

Module map: ``reference`` (the href conventions), ``base`` (errors, hashing
sink), ``http``, ``curl`` and ``s3`` (fetchers), ``stac`` (asset selection),
``stac_folder`` (a STAC Item/Catalog as the folder of a CWL ``Directory`` input), ``cache``
(content-addressed, LRU-bounded), ``stager`` (orchestration), ``admission``
(the cheap checks made before a job is accepted).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import httpx

from gateway.egress import EgressPolicy, guarded_client
from gateway.settings_workflow import WorkflowSettings
from gateway.staging.base import StagingError
from gateway.staging.cache import ContentCache
from gateway.staging.curl import CurlFetcher, find_curl
from gateway.staging.http import HttpFetcher
from gateway.staging.s3 import S3Fetcher, s3_client_factory
from gateway.staging.stager import Stager, staged_summary

log = logging.getLogger(__name__)

__all__ = [
    "ContentCache",
    "Stager",
    "StagingError",
    "build_cache",
    "build_curl",
    "build_stager",
    "staged_summary",
]


def build_cache(settings: WorkflowSettings) -> ContentCache | None:
    """The input cache the settings describe (None when disabled)."""
    cache = settings.cache
    if not cache.enabled:
        return None
    return ContentCache(Path(cache.root).resolve(), cache.max_bytes, cache.fresh_seconds)


def build_curl(settings: WorkflowSettings, policy: EgressPolicy) -> CurlFetcher | None:
    """The curl fetcher ``staging.http_backend`` asks for, when a usable curl is installed."""
    staging = settings.staging
    if staging.http_backend == "httpx":
        return None
    binary = find_curl(staging.curl_binary)
    if binary is None:
        level = logging.WARNING if staging.http_backend == "curl" else logging.INFO
        log.log(level, "no usable curl (%s): http(s) inputs use httpx", staging.curl_binary)
        return None
    return CurlFetcher(
        policy,
        binary,
        connect_timeout_seconds=settings.egress.connect_timeout_seconds,
        read_timeout_seconds=staging.read_timeout_seconds,
        max_redirects=settings.egress.max_redirects,
        retries=staging.retries,
        backoff_seconds=staging.retry_backoff_seconds,
    )


def build_stager(settings: WorkflowSettings, policy: EgressPolicy) -> Stager:
    """The stager the settings describe, every request going through ``policy``."""
    staging = settings.staging
    timeout = httpx.Timeout(
        staging.read_timeout_seconds, connect=settings.egress.connect_timeout_seconds
    )
    tls = httpx.create_ssl_context()  # loaded once (~50 ms), not for every download
    http = HttpFetcher(
        functools.partial(
            guarded_client,
            policy,
            timeout=timeout,
            max_redirects=settings.egress.max_redirects,
            verify=tls,
        ),
        retries=staging.retries,
        backoff_seconds=staging.retry_backoff_seconds,
        large=build_curl(settings, policy),
        large_min_bytes=staging.curl_min_bytes if staging.http_backend == "auto" else 0,
    )
    s3 = S3Fetcher(
        settings.s3,
        policy,
        s3_client_factory(
            settings.s3,
            settings.egress.connect_timeout_seconds,
            staging.read_timeout_seconds,
            staging.retries,
        ),
    )
    return Stager(
        http,
        s3,
        build_cache(settings),
        max_bytes=staging.max_input_bytes,
        max_seconds=staging.max_seconds_per_input,
        max_item_bytes=staging.max_stac_item_bytes,
        local_roots=staging.local_roots,
    )
