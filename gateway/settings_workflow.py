"""Settings of the workflow manager: egress guard, staging, cache, S3, callbacks, retention,
and the publication of outputs (the top-level ``publication:`` section).

One section of the configuration tree (``workflow:`` in the YAML file,
``HPCGW_WORKFLOW__<SUB>__<KEY>`` in the environment), kept in its own module so
:mod:`gateway.settings` only names it. See ``docs/workflow.md`` for what each
setting means to users and ``deploy/config/gateway.example.yaml`` for examples.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator, model_validator

GIB = 1024**3
MIB = 1024**2
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Origin(NamedTuple):
    """``scheme://host:port`` of an allow-listed service (``egress.allow_origins``)."""

    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, value: str) -> Origin:
        """The origin ``value`` names (port defaults by scheme); ValueError when it is
        not an http(s) origin: a path, query, user name or other scheme is refused."""
        try:
            parts = urlsplit(value.strip())
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"allow_origins: {value!r} is not a URL: {exc}") from None
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").rstrip(".")
        extra = parts.path not in ("", "/") or parts.query or parts.fragment or parts.username
        if scheme not in _DEFAULT_PORTS or not host or extra:
            raise ValueError(
                f"allow_origins: {value!r} is not an origin like http://host:port "
                "(http or https, a host, no path)"
            )
        return cls(scheme, host, port or _DEFAULT_PORTS[scheme])

    @property
    def text(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


class EgressSettings(BaseModel):
    """What outbound requests (inputs, STAC items, callbacks) may reach.

    By default only public unicast addresses are reachable. ``allow_cidrs``
    opens address ranges (e.g. an internal mirror's subnet, ``127.0.0.0/8`` in
    tests); ``allow_hosts`` trusts host names whatever they resolve to (an
    entry starting with ``.`` matches any sub-domain). ``allow_origins`` is the
    narrowest: one ``scheme://host:port`` each (e.g. the demo's EO mirror,
    ``http://127.0.0.1:8190``), exactly that scheme, host and port and nothing
    else on the same address.
    """

    allow_cidrs: list[str] = Field(default_factory=list)
    allow_hosts: list[str] = Field(default_factory=list)
    allow_origins: list[str] = Field(default_factory=list)
    #: Redirects followed per request; every hop is checked again.
    max_redirects: int = Field(default=5, ge=0, le=20)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Refuse (400) at submission a host name that does not resolve now. On by default:
    #: a name the gateway cannot resolve cannot be checked, and accepting it made the
    #: check depend on DNS failing (issue 14). ``false`` accepts it (a DNS outage then
    #: does not reject work); it is checked again when fetched either way.
    require_resolvable: bool = True
    #: At submission, probe each http(s) reference over the network: follow its redirects
    #: (``HEAD``, else a one-byte ``GET``), every hop checked; for a STAC Item, read it and
    #: check (and probe) the selected asset's href. Only policy violations refuse (400);
    #: a probe that fails or times out accepts the job (the fetch checks everything again).
    probe_references: bool = True
    #: Timeout of each probe request (connect, and each read or write).
    probe_hop_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    #: Wall-clock budget of the probe of one input, all hops and the STAC Item included.
    probe_budget_seconds: float = Field(default=5.0, gt=0, le=120)

    @field_validator("allow_cidrs")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError as exc:
                raise ValueError(f"allow_cidrs: {value!r} is not a CIDR: {exc}") from None
        return values

    @field_validator("allow_hosts")
    @classmethod
    def _hosts(cls, values: list[str]) -> list[str]:
        return [v.strip().lower().rstrip(".") for v in values if v.strip()]

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        return [Origin.parse(v).text for v in values]


class StagingSettings(BaseModel):
    """Limits for fetching inputs given by reference."""

    #: Largest input accepted (the download stops beyond it).
    max_input_bytes: int = Field(default=50 * GIB, gt=0)
    #: Longest wait for the next bytes of a download.
    read_timeout_seconds: float = Field(default=60.0, gt=0)
    #: Longest a single input may take to download, retries included.
    max_seconds_per_input: float = Field(default=6 * 3600.0, gt=0)
    #: Retries of an interrupted download (resumed with ``Range`` when possible).
    retries: int = Field(default=3, ge=0, le=20)
    retry_backoff_seconds: float = Field(default=1.0, ge=0)
    #: Largest STAC Item document read.
    max_stac_item_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    #: Local folders whose files may be given as ``file:///...`` inputs (none by default).
    local_roots: list[str] = Field(default_factory=list)
    #: Who downloads http(s) inputs: ``httpx`` (in-process, ~230 MiB/s at most), ``curl``
    #: (the curl binary for every input file) or ``auto``: curl for answers announcing at
    #: least ``curl_min_bytes``, httpx for the rest. Without a usable curl (>= 7.63) both
    #: ``auto`` and ``curl`` use httpx (``curl`` logs a warning). The egress guard, limits,
    #: checksums and retries are the same either way.
    http_backend: Literal["auto", "curl", "httpx"] = "auto"
    curl_min_bytes: int = Field(default=64 * 1024**2, ge=0)
    #: The curl executable (a name looked up in ``PATH``, or a path).
    curl_binary: str = "curl"
    #: Nearline inputs (a source answering 202, or 503 with ``Retry-After``: "on tape,
    #: come back later"): the job waits in the gateway -- no Slurm job -- and staging is
    #: tried again after ``Retry-After`` (at most ``nearline_max_retry_seconds``) or, without
    #: one, after a backoff from ``nearline_retry_seconds``; past ``nearline_max_wait_seconds``
    #: of waiting the job fails saying so.
    nearline_retry_seconds: float = Field(default=60.0, gt=0)
    nearline_max_retry_seconds: float = Field(default=900.0, gt=0)
    nearline_max_wait_seconds: float = Field(default=24 * 3600.0, gt=0)


class CacheSettings(BaseModel):
    """The content-addressed (sha256) cache of fetched inputs, bounded by LRU eviction."""

    enabled: bool = True
    root: str = "var/cache/inputs"
    #: Total size kept; least recently used objects are evicted beyond it.
    max_bytes: int = Field(default=100 * GIB, ge=0)
    #: A cached URL is reused without any request for this long, then revalidated
    #: (``If-None-Match`` / ``If-Modified-Since``; S3: ETag).
    fresh_seconds: float = Field(default=24 * 3600.0, ge=0)


class S3Settings(BaseModel):
    """The S3 service ``s3://bucket/key`` inputs are read from (AWS, MinIO, Ceph RGW...)."""

    #: Endpoint URL; None means AWS (``https://s3.<region>.amazonaws.com``).
    endpoint_url: str | None = None
    region: str = "us-east-1"
    #: Files holding the credentials; when unset, boto3's usual chain (env, profile).
    access_key_id_file: str | None = None
    secret_access_key_file: str | None = None
    #: Unsigned requests (public buckets).
    anonymous: bool = False
    verify_tls: bool | str = True


class CallbackSettings(BaseModel):
    """Delivery of subscriber callbacks (OGC API - Processes ``callback`` class)."""

    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    max_attempts: int = Field(default=8, ge=1)
    backoff_base_seconds: float = Field(default=5.0, ge=0)
    backoff_max_seconds: float = Field(default=900.0, ge=0)
    #: Deliveries tried per worker cycle, and the cycle time they may take.
    batch: int = Field(default=20, ge=1)
    cycle_budget_seconds: float = Field(default=10.0, gt=0)
    #: In-progress notifications of one job are at most this frequent.
    progress_min_interval_seconds: float = Field(default=10.0, ge=0)


class RetentionSettings(BaseModel):
    """How long published outputs are kept (``hpcgw cleanup`` applies it)."""

    #: Days after a job finished before its published outputs are deleted (None: forever).
    published_days: float | None = Field(default=None, gt=0)


class WorkflowSettings(BaseModel):
    """The workflow manager's section of the configuration."""

    egress: EgressSettings = Field(default_factory=EgressSettings)
    staging: StagingSettings = Field(default_factory=StagingSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    callbacks: CallbackSettings = Field(default_factory=CallbackSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)


# -- publication of outputs (the top-level ``publication:`` section) ------------------

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class S3PublicationSettings(BaseModel):
    """Where outputs go with ``publication.backend: s3`` (objects ``<prefix>/<job id>/<file>``).

    Credentials come from the two files when set, else from ``profile``, else
    from boto3's usual chain (``AWS_*`` environment variables, shared
    config/credentials files, instance roles).
    """

    bucket: str = ""
    #: Key prefix, ``/``-separated segments (empty: objects at ``<job id>/<file>``).
    prefix: str = "hpcgw/outputs"
    #: Endpoint URL; None means AWS (``https://s3.<region>.amazonaws.com``).
    endpoint_url: str | None = None
    region: str = "us-east-1"
    addressing_style: Literal["auto", "path", "virtual"] = "path"
    access_key_id_file: str | None = None
    secret_access_key_file: str | None = None
    #: A named profile of the shared AWS config files (when no key files are set).
    profile: str | None = None
    verify_tls: bool | str = True
    #: Base URL under which the bucket's objects are publicly readable (a public bucket,
    #: a CDN...): links are then ``<public_base_url>/<key>`` and never expire. Unset:
    #: STAC asset hrefs are pre-signed GET URLs and result hrefs point at the gateway.
    public_base_url: str | None = None
    #: Validity of each pre-signed URL (SigV4 allows at most 7 days).
    presign_expiry_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    #: Files from this size are sent as multipart uploads of ``multipart_chunk_bytes`` parts.
    multipart_threshold_bytes: int = Field(default=64 * MIB, ge=5 * MIB)
    multipart_chunk_bytes: int = Field(default=16 * MIB, ge=5 * MIB, le=5 * GIB)
    #: Parts sent at once (memory in flight stays below about concurrency x chunk size).
    max_concurrency: int = Field(default=4, ge=1, le=32)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    read_timeout_seconds: float = Field(default=60.0, gt=0)
    #: botocore's own retries of throttling, 5xx and dropped connections.
    retries: int = Field(default=3, ge=0, le=20)

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if value and not _BUCKET.match(value):
            raise ValueError(f"bucket: {value!r} is not a valid S3 bucket name")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        parts = [p for p in value.strip("/").split("/") if p]
        for part in parts:
            if not _PREFIX_PART.match(part):
                raise ValueError(f"prefix: segment {part!r} must be letters, digits, '._-'")
        return "/".join(parts)

    @field_validator("public_base_url")
    @classmethod
    def _public(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"public_base_url: {value!r} must be an http(s) URL")
        return value.rstrip("/")


class PublicationSettings(BaseModel):
    """Where published outputs are kept: the gateway's own folder, or an S3 bucket."""

    #: ``local``: copied under ``root`` and served by the gateway; ``s3``: uploaded.
    backend: Literal["local", "s3"] = "local"
    #: Local directory where published outputs are copied and served from
    #: (with the ``s3`` backend: where files wait for their upload, ``<root>/.s3-spool``).
    root: str = "var/published"
    s3: S3PublicationSettings = Field(default_factory=S3PublicationSettings)

    @model_validator(mode="after")
    def _bucket_named(self) -> PublicationSettings:
        if self.backend == "s3" and not self.s3.bucket:
            raise ValueError("publication.s3.bucket is required when publication.backend is s3")
        return self
