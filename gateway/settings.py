"""Configuration: one pydantic-settings tree, from a YAML file plus environment overrides.

Precedence (highest first): keyword arguments, environment variables
``HPCGW_<SECTION>__<KEY>`` (e.g. ``HPCGW_DATABASE__URL``), the YAML file named
by ``HPCGW_CONFIG`` (or passed to :func:`load_settings`), then defaults.
Secrets (JWT keys, passwords) are referenced by file path, never inlined.
"""

from __future__ import annotations

import os
import sys
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from gateway.accounting.config import AccountingSettings
from gateway.logs import LogSettings
from gateway.routing.config import RoutingSettings
from gateway.settings_apppkg import AppPkgSettings, CwlRunner, ToilSettings
from gateway.settings_workflow import PublicationSettings, WorkflowSettings
from gateway.triggers.config import TriggerSettings


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 5000
    #: Public URL of the gateway, used in links (Location headers, hrefs); behind a
    #: reverse proxy the proxy's URL with its path prefix, e.g. ``https://gep.example.org/hpc``.
    base_url: str = "http://127.0.0.1:5000"
    #: Peers (addresses or CIDRs) whose ``X-Forwarded-For/Proto/Host/Port/Prefix``
    #: headers are honoured (the reverse proxy); from any other peer they are dropped.
    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list)
    #: gunicorn worker processes for ``hpcgw serve``.
    workers: int = 2
    threads: int = 8
    #: ``hpcgw serve`` also starts one ``hpcgw worker`` process (demo convenience).
    embedded_worker: bool = False
    #: Longest a synchronous execution waits before answering like an async one.
    sync_timeout_seconds: float = 60.0
    #: Largest accepted request body.
    max_body_bytes: int = 1_048_576
    title: str = "OGC HPC Gateway"
    description: str = "OGC API - Processes and WPS on a Slurm cluster"


class WebSettings(BaseModel):
    """The gateway's own pages for people in a browser (``/ui/``, docs/web.md).

    With ``auth.mode: oidc`` people sign in at ``auth.oidc.issuer`` with the
    authorization-code flow and PKCE; the redirect URI is
    ``{server.base_url}/signin/callback`` (the public URL, also behind a proxy).
    """

    #: The OIDC client the pages sign in with (public, PKCE; Keycloak: ``ogc-gateway``).
    client_id: str = "ogc-gateway"
    #: File holding the client secret when the client is confidential (else public + PKCE).
    client_secret_file: str | None = None
    scope: str = "openid profile email"
    #: A browser session ends after this long, whatever the refresh token allows.
    session_hours: float = Field(default=8.0, gt=0, le=24 * 30)
    #: Background map tiles (``{z}/{x}/{y}`` URL template) under job footprints;
    #: none by default (closed networks): the footprint is drawn on a plain background.
    map_tiles_url: str | None = None
    map_attribution: str = ""


class DatabaseSettings(BaseModel):
    #: SQLAlchemy URL. SQLite (WAL) by default; ``postgresql+psycopg://...`` in production.
    url: str = "sqlite:///var/hpcgw.db"
    #: Run Alembic migrations to head at start-up (convenient for SQLite/dev).
    auto_upgrade: bool = True
    pool_size: int = 10


class DefaultUser(BaseModel):
    """The identity used for every request while authentication is off."""

    sub: str = "dev-user"
    username: str = "alice"
    hpc_login: str = "alice"

    @field_validator("hpc_login")
    @classmethod
    def _not_root(cls, value: str) -> str:
        if value == "root":
            raise ValueError("jobs must never run as root")
        return value


#: Signature algorithms a bearer token may use: asymmetric only (never ``none``/HMAC).
TokenAlgorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]
_DEFAULT_ALGORITHMS: list[TokenAlgorithm] = ["RS256", "ES256", "PS256"]


class OidcSettings(BaseModel):
    """Bearer-token validation against an OpenID Connect provider (e.g. a Keycloak realm)."""

    #: The realm's issuer URL; discovery is read from ``{issuer}/.well-known/openid-configuration``.
    issuer: str = "http://127.0.0.1:8180/realms/gep"
    #: Accepted ``aud`` values (a token must name at least one). Keycloak adds the
    #: client id only with an *Audience* protocol mapper on the client.
    audience: list[str] = Field(default_factory=lambda: ["ogc-gateway"])
    #: The gateway's client id: ``resource_access.<client_id>.roles`` are read for roles.
    client_id: str = "ogc-gateway"
    algorithms: list[TokenAlgorithm] = Field(default_factory=lambda: _DEFAULT_ALGORITHMS.copy())
    #: Clock skew tolerated on ``exp``/``nbf``/``iat``.
    leeway_seconds: int = Field(default=30, ge=0, le=300)
    #: Skip discovery and use this JWKS URL (discovery is still the default).
    jwks_uri: str | None = None
    #: Keys are re-read at most this often when a token names an unknown ``kid``.
    jwks_min_refresh_seconds: float = Field(default=30.0, ge=0)
    #: Known keys are re-read after this long even when every ``kid`` is known.
    jwks_max_age_seconds: float = Field(default=3600.0, gt=0)
    http_timeout_seconds: float = 5.0
    #: ``True``, ``False`` or a CA bundle path for the provider's TLS certificate.
    verify_tls: bool | str = True
    #: Claim holding the portal user name shown in job records.
    username_claim: str = "preferred_username"
    #: Claim ``typ`` values accepted when the claim is present (Keycloak: access
    #: tokens are ``Bearer``; ID and refresh tokens are refused).
    token_types: list[str] = Field(default_factory=lambda: ["Bearer"])


class RoleSettings(BaseModel):
    """Which identity-provider roles/groups grant the gateway's roles.

    Entries: ``NAME`` (realm role, or role of the gateway client), ``realm:NAME``,
    ``client:CLIENT:NAME`` or ``group:/PATH`` (Keycloak group, leading ``/`` optional).
    """

    #: May execute processes and manage their own jobs.
    user: list[str] = Field(default_factory=lambda: ["hpc-user"])
    #: Sees every job and may use the admin endpoints (implies ``user``).
    admin: list[str] = Field(default_factory=lambda: ["hpc-admin"])
    #: May deploy, replace and undeploy CWL application packages (OGC API - Processes Part 2).
    deployer: list[str] = Field(default_factory=lambda: ["hpc-deployer"])


class IdentityMapSettings(BaseModel):
    """Portal user -> HPC login rule, applied by the user sync (and stored in the DB).

    ``rule`` is a template over ``{preferred_username}`` / ``{username}`` (same
    value), ``{sub}``, ``{email_local}``; or ``attribute:NAME`` to take the Keycloak
    user attribute ``NAME``. The result is lower-cased and must match ``login_pattern``.
    """

    rule: str = "{preferred_username}"
    login_pattern: str = r"^[a-z_][a-z0-9_-]{0,31}$"
    #: Logins never mapped to a portal user, whatever the rule says.
    reserved_logins: list[str] = Field(
        default_factory=lambda: [
            "root",
            "daemon",
            "bin",
            "sys",
            "sync",
            "nobody",
            "slurm",
            "munge",
            "mysql",
            "postgres",
            "hpcgw",
            "sshd",
            "www-data",
            "admin",
        ]
    )


class AuthSettings(BaseModel):
    #: ``none`` (development: every request is ``default_user``) or ``oidc``.
    mode: Literal["none", "oidc"] = "none"
    default_user: DefaultUser = Field(default_factory=DefaultUser)
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    roles: RoleSettings = Field(default_factory=RoleSettings)
    identity: IdentityMapSettings = Field(default_factory=IdentityMapSettings)
    #: Served without a token. An entry ending in ``/`` is a prefix.
    public_paths: list[str] = Field(
        default_factory=lambda: ["/", "/conformance", "/openapi", "/static/"]
    )
    #: Discovery without a token: the process list and descriptions and the WPS
    #: GetCapabilities / DescribeProcess (portals and catalogues harvest them
    #: anonymously). Off: they need a token like everything else. Operations on
    #: jobs are authenticated either way.
    public_discovery: bool = True


class KeycloakAdminSettings(BaseModel):
    """The realm's admin REST API, reached with a service-account client (client credentials)."""

    server_url: str = "http://127.0.0.1:8180"
    realm: str = "gep"
    client_id: str = "hpcgw-sync"
    #: File holding the client secret (never inline secrets in configuration).
    client_secret_file: str | None = None
    verify_tls: bool | str = True
    timeout_seconds: int = 30


class UnixHookSettings(BaseModel):
    """Site hook commands for unix accounts: argv lists, ``{login}`` is substituted.

    Never run through a shell. An empty list skips that step (e.g. when accounts
    come from LDAP). The defaults suit the single-machine dev cluster.
    """

    enabled: bool = True
    create: list[str] = Field(
        default_factory=lambda: [
            "useradd",
            "--create-home",
            "--user-group",
            "--shell",
            "/bin/bash",
            "{login}",
        ]
    )
    #: Disabling expires the account (login refused by PAM); files are kept.
    disable: list[str] = Field(default_factory=lambda: ["usermod", "--expiredate", "1", "{login}"])
    enable: list[str] = Field(default_factory=lambda: ["usermod", "--expiredate", "", "{login}"])


class SiteSyncSettings(BaseModel):
    """How the user sync reaches one site's accounting (``usersync.sites.<site>``)."""

    model_config = ConfigDict(extra="forbid")

    sacctmgr: str = "sacctmgr"
    scancel: str = "scancel"
    #: Slurm cluster name for sacctmgr (None: the one of its slurm.conf).
    cluster: str | None = None
    #: ``SLURM_CONF`` for this site's commands (None: the commands' own default).
    slurm_conf: str | None = None
    #: Keycloak group path -> Slurm account *at this site* (None: ``usersync.groups``).
    groups: dict[str, str] | None = None


class UserSyncSettings(BaseModel):
    """Keycloak users/groups -> Slurm users, accounts, associations and unix accounts."""

    keycloak: KeycloakAdminSettings = Field(default_factory=KeycloakAdminSettings)
    #: Keycloak group path -> Slurm account. Members get an association in the account.
    groups: dict[str, str] = Field(default_factory=lambda: {"/hpc-users": "gep"})
    #: Slurm cluster name for sacctmgr (None: the local cluster of slurm.conf).
    cluster: str | None = None
    sacctmgr: str = "sacctmgr"
    scancel: str = "scancel"
    #: Create missing Slurm accounts (under ``account_parent``).
    create_accounts: bool = True
    account_parent: str = "root"
    #: Cancel a disabled user's pending/running jobs (sacctmgr refuses to remove an
    #: association with active jobs).
    cancel_jobs_on_disable: bool = True
    #: A run that would disable more users than this is refused unless forced
    #: (protects against a misconfigured group emptying the cluster).
    max_disables: int = Field(default=20, ge=0)
    command_timeout_seconds: float = 60.0
    unix: UnixHookSettings = Field(default_factory=UnixHookSettings)
    #: Sync every one of these sites (each its own sacctmgr and group -> account
    #: mapping); empty: one site, through the commands above.
    sites: dict[str, SiteSyncSettings] = Field(default_factory=dict)


class SlurmRestSettings(BaseModel):
    url: str = "http://127.0.0.1:6820"
    #: slurmrestd OpenAPI version to speak (``v0.0.38``, ``v0.0.40`` ... ``v0.0.42``),
    #: or ``auto``: the newest of those the server's ``/openapi/v3`` offers, probed once.
    api_version: str = "auto"
    #: HS256 key shared with slurmctld (``AuthAltParameters=jwt_key=``), for minting
    #: short-lived per-user tokens (trusted-service mode).
    jwt_key_file: str = "/etc/slurm/jwt_hs256.key"
    token_lifespan_seconds: int = 300
    #: Slurm user the monitor acts as for status/accounting queries.
    service_user: str = "hpcgw"
    timeout_seconds: float = 10.0
    #: ``mint``: the gateway signs short-lived per-user Slurm tokens with
    #: ``jwt_key_file`` (trusted service). ``forward``: the user's own OIDC access
    #: token is presented to slurmrestd (which must trust the IdP's JWKS); it is kept
    #: with the job only until submission, and minted tokens (if a key is configured)
    #: serve monitoring and calls made after the user's token expired.
    credentials: Literal["mint", "forward"] = "mint"

    @field_validator("api_version")
    @classmethod
    def _known_version(cls, value: str) -> str:
        from hpc_adapters.slurm.dialects import AUTO, supported_versions

        version = value if value == AUTO or value.startswith("v") else f"v{value}"
        if version != AUTO and version not in supported_versions():
            known = ", ".join([AUTO, *supported_versions()])
            raise ValueError(f"unsupported slurmrestd api_version {value!r} (use one of {known})")
        return version


class SshSettings(BaseModel):
    """The login node for ``adapter: ssh`` (docs/adapters.md): Slurm CLI + SFTP as each user."""

    host: str = "127.0.0.1"
    port: int = Field(default=22, ge=1, le=65535)
    #: OpenSSH known_hosts holding the login node's host keys; unknown keys are refused.
    known_hosts_file: str = "/etc/hpcgw/ssh_known_hosts"
    #: ``certificate``: short-lived per-user certificates signed with ``ca_key_file``
    #: (sshd ``TrustedUserCAKeys``); ``key_file``: one private key per user.
    auth: Literal["certificate", "key_file"] = "certificate"
    ca_key_file: str = "/etc/hpcgw/ssh_user_ca"
    certificate_minutes: int = Field(default=5, ge=1, le=60)
    #: Private key per login (``{login}`` substituted); ``<file>-cert.pub`` is used if present.
    key_file_template: str = "/etc/hpcgw/ssh-keys/{login}"
    #: Login (with a shell) for squeue/sacct monitoring; must see every user's jobs.
    service_user: str = "hpcgw"
    #: Channels per connection; keep below sshd's ``MaxSessions`` (one is kept for SFTP).
    max_sessions: int = Field(default=10, ge=2, le=100)
    connect_timeout_seconds: float = 10.0
    command_timeout_seconds: float = 60.0
    keepalive_seconds: int = 30
    #: Connections unused this long are closed.
    idle_close_seconds: float = 300.0
    ssh_keygen: str = "ssh-keygen"


class DataSources(BaseModel):
    """Where data local to a site comes from (routing's *data locality*, docs/federation.md).

    An input by reference is local to the site when its URL's host is one of
    ``hosts``, its URL starts with one of ``url_prefixes``, or it names a STAC
    collection of ``stac_collections`` (``.../collections/<id>/items/...``).
    """

    model_config = ConfigDict(extra="forbid")

    hosts: list[str] = Field(default_factory=list)
    url_prefixes: list[str] = Field(default_factory=list)
    stac_collections: list[str] = Field(default_factory=list)

    @field_validator("hosts")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [h.strip().lower() for h in value if h.strip()]


class SiteSettings(BaseModel):
    """One HPC site: how to reach its scheduler, where job workspaces live, and what
    routing needs to know about it (docs/federation.md).

    Prices per partition are *not* here: they are ``accounting.prices.<site>``,
    the one table quotes, usage costs and routing all read.
    """

    adapter: Literal["slurmrest", "ssh", "pyslurm"] = "slurmrest"
    #: A disabled site gets no new jobs (its running jobs are still followed).
    enabled: bool = True
    #: Partitions the gateway may use (empty: any). A process whose partition is
    #: not listed cannot run here; ``default_partition`` should be one of them.
    partitions: list[str] = Field(default_factory=list)
    #: Data local to this site (hosts, URL prefixes, STAC collection ids).
    data: DataSources = Field(default_factory=DataSources)
    slurmrest: SlurmRestSettings = Field(default_factory=SlurmRestSettings)
    ssh: SshSettings = Field(default_factory=SshSettings)
    #: Root of per-job workspaces on the cluster's shared filesystem.
    workspace_root: str = "/var/lib/hpcgw/work"
    #: Modes of the workspace folders and files the gateway creates (octal, e.g.
    #: "2770"/"660"). The defaults suit a gateway running as root, which hands
    #: them to the user (chown); a gateway under a service account keeps them,
    #: so the root must be a setgid folder of a group shared with the users and
    #: these modes must let that group write (docs/installing.md, Workspaces).
    workspace_dir_mode: int = 0o750
    workspace_file_mode: int = 0o640
    default_partition: str | None = None
    #: Container runtime on the compute nodes (``apptainer`` or ``singularity``), or none.
    #: Only a site declaring one runs CWL packages that require a container
    #: (``DockerRequirement``); cwltool runs them there with ``--singularity``.
    container_runtime: Literal["apptainer", "singularity"] | None = None
    #: Folder of the runtime's commands on the compute nodes, put first on the job's
    #: PATH (cwltool calls ``singularity``, which Apptainer installs); none: the nodes'
    #: own PATH. Used only with ``container_runtime``.
    container_bin: str | None = None
    #: Folder of ready SIF images, readable by the users (cwltool's
    #: ``CWL_SINGULARITY_CACHE``): a ``dockerPull: name:tag`` runs
    #: ``<folder>/name:tag.sif`` (``/`` in the name written ``_s_``) without pulling,
    #: for nodes without registry access. Used only with ``container_runtime``.
    container_images: str | None = None
    #: Toil on this site (``toil-cwl-runner`` next to ``python``), or none. Only a site
    #: with it runs CWL packages asking for ``"runner": "toil"`` (each step its own job).
    toil: ToilSettings | None = None
    #: How deployed multi-step Workflows run here when their package does not say:
    #: ``cwltool`` in the job's allocation, or ``toil`` (needs ``toil``).
    cwl_runner: CwlRunner = "cwltool"
    #: Python interpreter on the cluster that runs the process runners.
    python: str = Field(default_factory=lambda: sys.executable)
    #: Extra ``PYTHONPATH`` for runners on the cluster (the gateway's source tree).
    pythonpath: str = Field(default_factory=lambda: str(Path(__file__).resolve().parent.parent))

    @model_validator(mode="after")
    def _toil_declared(self) -> SiteSettings:
        if self.cwl_runner == "toil" and self.toil is None:
            raise ValueError("cwl_runner: toil needs the site's toil section (toil: {})")
        return self

    @field_validator("workspace_dir_mode", "workspace_file_mode", mode="before")
    @classmethod
    def _octal(cls, value: object) -> object:
        """``"2770"`` / ``"0o2770"`` are octal (YAML would read 2770 as decimal)."""
        if isinstance(value, str):
            try:
                value = int(value.removeprefix("0o"), 8)
            except ValueError:
                raise ValueError(f"a mode is octal digits like '2770', not {value!r}") from None
        if isinstance(value, int) and not 0 <= value <= 0o7777:
            raise ValueError(f"a mode is between 0 and 7777 (octal), not {value:o}")
        return value


class WorkerSettings(BaseModel):
    #: Seconds between dispatcher/monitor cycles (bounds the gateway's added latency).
    poll_interval_seconds: float = 1.0
    #: Between polls, how often new jobs are claimed and ended ones finalised (DB only).
    dispatch_poll_seconds: float = 0.05
    dispatch_batch: int = 20
    #: Between polls, look for the end records jobs write (``stat`` of one file per
    #: running job on sites whose workspaces are mounted) and poll a site at once
    #: when one appears; polls remain the safety net (docs/workflow.md, Job end).
    end_records: bool = True
    #: Submissions (staging, slurmrestd/SSH) run in this many threads at most.
    submit_threads: int = Field(default=4, ge=1, le=32)
    #: CPU priority of the worker's threads (Linux nice, 0-19), e.g. 10 on a host
    #: shared with the API so that requests go first. 0 keeps the process's own.
    nice: int = Field(default=0, ge=0, le=19)
    lease_seconds: float = 120.0
    #: Transient-error retries before a job is failed.
    max_attempts: int = 8
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 300.0
    #: Largest output manifest / progress file read back from the cluster.
    max_manifest_bytes: int = 1_048_576
    #: Remove the workspace of finished jobs after results are collected.
    cleanup_on_success: bool = False


class Settings(BaseSettings):
    """The whole configuration tree."""

    model_config = SettingsConfigDict(
        env_prefix="HPCGW_", env_nested_delimiter="__", extra="forbid"
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    sites: dict[str, SiteSettings] = Field(default_factory=lambda: {"dev": SiteSettings()})
    #: Where a job goes when routing finds nothing to tell sites apart (ties).
    default_site: str = "dev"
    #: How jobs are routed between sites (docs/federation.md).
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    publication: PublicationSettings = Field(default_factory=PublicationSettings)
    #: Input staging, egress guard, input cache, callbacks, retention.
    workflow: WorkflowSettings = Field(default_factory=WorkflowSettings)
    usersync: UserSyncSettings = Field(default_factory=UserSyncSettings)
    accounting: AccountingSettings = Field(default_factory=AccountingSettings)
    #: Log format (text or JSON lines) and level (gateway.logs).
    logging: LogSettings = Field(default_factory=LogSettings)
    #: Deployed CWL application packages (OGC API - Processes Part 2).
    apppkg: AppPkgSettings = Field(default_factory=AppPkgSettings)
    #: Event-triggered runs (``/triggers``; docs/triggers.md).
    triggers: TriggerSettings = Field(default_factory=TriggerSettings)
    #: The pages for people in a browser: sign-in, forms, job pages, map.
    web: WebSettings = Field(default_factory=WebSettings)
    #: Process ids to offer (empty: every process in the registry).
    processes: list[str] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

    def site(self, name: str | None = None) -> SiteSettings:
        return self.sites[name or self.default_site]


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by ``HPCGW_CONFIG`` (lowest precedence)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = _CONFIG_FILE.get() or os.environ.get("HPCGW_CONFIG")
        if not path:
            return {}
        return read_yaml(Path(path))


class ConfigError(ValueError):
    """The configuration file is missing or not a YAML mapping."""


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"configuration file {path} must hold a mapping")
    return data


#: The file given to :func:`load_settings`, for this call only (never put in the
#: process environment, so one load cannot leak into later ``Settings()``).
_CONFIG_FILE: ContextVar[str | None] = ContextVar("hpcgw_config_file", default=None)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings from a YAML file (else ``$HPCGW_CONFIG``), the environment and overrides."""
    token = _CONFIG_FILE.set(str(config_file) if config_file is not None else None)
    try:
        return Settings(**overrides)
    finally:
        _CONFIG_FILE.reset(token)
