"""Configuration: one pydantic-settings tree, from a YAML file plus environment overrides.

Precedence (highest first): keyword arguments, environment variables
``HPCGW_<SECTION>__<KEY>`` (e.g. ``HPCGW_DATABASE__URL``), the YAML file named
by ``HPCGW_CONFIG`` (or passed to :func:`load_settings`), then defaults.
Secrets (JWT keys, passwords) are referenced by file path, never inlined.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 5000
    #: Public URL of the gateway, used in links (Location headers, hrefs).
    base_url: str = "http://127.0.0.1:5000"
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


class AuthSettings(BaseModel):
    #: ``none`` (development: every request is ``default_user``) or ``oidc``.
    mode: Literal["none", "oidc"] = "none"
    default_user: DefaultUser = Field(default_factory=DefaultUser)


class SlurmRestSettings(BaseModel):
    url: str = "http://127.0.0.1:6820"
    #: OpenAPI version served by slurmrestd; selects the dialect.
    api_version: str = "v0.0.38"
    #: HS256 key shared with slurmctld (``AuthAltParameters=jwt_key=``), for minting
    #: short-lived per-user tokens (trusted-service mode).
    jwt_key_file: str = "/etc/slurm/jwt_hs256.key"
    token_lifespan_seconds: int = 300
    #: Slurm user the monitor acts as for status/accounting queries.
    service_user: str = "hpcgw"
    timeout_seconds: float = 10.0


class SiteSettings(BaseModel):
    """One HPC site: how to reach its scheduler and where job workspaces live."""

    adapter: Literal["slurmrest", "ssh", "pyslurm"] = "slurmrest"
    slurmrest: SlurmRestSettings = Field(default_factory=SlurmRestSettings)
    #: Root of per-job workspaces on the cluster's shared filesystem.
    workspace_root: str = "/var/lib/hpcgw/work"
    default_partition: str | None = None
    #: Python interpreter on the cluster that runs the process runners.
    python: str = Field(default_factory=lambda: sys.executable)
    #: Extra ``PYTHONPATH`` for runners on the cluster (the gateway's source tree).
    pythonpath: str = Field(default_factory=lambda: str(Path(__file__).resolve().parent.parent))


class WorkerSettings(BaseModel):
    #: Seconds between dispatcher/monitor cycles (bounds the gateway's added latency).
    poll_interval_seconds: float = 1.0
    dispatch_batch: int = 20
    lease_seconds: float = 120.0
    #: Transient-error retries before a job is failed.
    max_attempts: int = 8
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 300.0
    #: Largest output manifest / progress file read back from the cluster.
    max_manifest_bytes: int = 1_048_576
    #: Remove the workspace of finished jobs after results are collected.
    cleanup_on_success: bool = False


class PublicationSettings(BaseModel):
    #: Local directory where published outputs are copied and served from.
    root: str = "var/published"


class Settings(BaseSettings):
    """The whole configuration tree."""

    model_config = SettingsConfigDict(
        env_prefix="HPCGW_", env_nested_delimiter="__", extra="forbid"
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    sites: dict[str, SiteSettings] = Field(default_factory=lambda: {"dev": SiteSettings()})
    default_site: str = "dev"
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    publication: PublicationSettings = Field(default_factory=PublicationSettings)
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
        path = os.environ.get("HPCGW_CONFIG")
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


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings from an optional YAML file, the environment and overrides."""
    if config_file is not None:
        os.environ["HPCGW_CONFIG"] = str(config_file)
    return Settings(**overrides)
