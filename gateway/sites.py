"""Build one scheduler adapter per configured site (called only from the composition root)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from gateway.settings import SiteSettings
from hpc_adapters.base import HpcIdentity, SchedulerAdapter, WorkspaceFiles
from hpc_adapters.errors import HpcError

log = logging.getLogger(__name__)


class UnknownSite(LookupError):
    """A job names a site that is not configured (any more)."""


def _local_files(site: SiteSettings) -> Callable[[HpcIdentity], WorkspaceFiles]:
    from hpc_adapters.localfs import LocalWorkspace

    root, dir_mode, file_mode = (
        site.workspace_root,
        site.workspace_dir_mode,
        site.workspace_file_mode,
    )

    def factory(identity: HpcIdentity) -> WorkspaceFiles:
        return LocalWorkspace(root, identity, dir_mode=dir_mode, file_mode=file_mode)

    return factory


def build_adapter(name: str, site: SiteSettings) -> SchedulerAdapter:
    """The adapter a site's settings ask for."""
    if site.adapter == "slurmrest":
        from hpc_adapters.slurmrest import (
            ForwardedTokenSource,
            MintingTokenSource,
            SlurmRestAdapter,
            TokenSource,
        )

        rest = site.slurmrest
        minting = MintingTokenSource(rest.jwt_key_file, rest.token_lifespan_seconds)
        tokens: TokenSource = minting
        if rest.credentials == "forward":
            tokens = ForwardedTokenSource(fallback=minting)
        return SlurmRestAdapter(
            site=name,
            base_url=rest.url,
            api_version=rest.api_version,
            token_source=tokens,
            service_user=rest.service_user,
            files_factory=_local_files(site),
            timeout=rest.timeout_seconds,
        )
    if site.adapter == "ssh":
        return _ssh_adapter(name, site)
    if site.adapter == "pyslurm":
        from hpc_adapters.pyslurm_adapter import PyslurmAdapter

        return PyslurmAdapter(site=name, files_factory=_local_files(site))
    raise ValueError(f"site '{name}': adapter '{site.adapter}' is not available in this build")


def _ssh_adapter(name: str, site: SiteSettings) -> SchedulerAdapter:
    """SshAdapter from ``sites.<name>.ssh``: certificates or key files, one pool per site."""
    from hpc_adapters.ssh import (
        CertificateSigner,
        CredentialSource,
        KeyFileCredentials,
        SshAdapter,
        SshPool,
    )

    ssh = site.ssh
    credentials: CredentialSource
    if ssh.auth == "certificate":
        credentials = CertificateSigner(
            ssh.ca_key_file, ssh.certificate_minutes, ssh_keygen=ssh.ssh_keygen
        )
    else:
        credentials = KeyFileCredentials(ssh.key_file_template)
    pool = SshPool(
        ssh.host,
        ssh.port,
        credentials,
        ssh.known_hosts_file,
        connect_timeout=ssh.connect_timeout_seconds,
        command_timeout=ssh.command_timeout_seconds,
        keepalive_seconds=ssh.keepalive_seconds,
        max_sessions=ssh.max_sessions,
        idle_seconds=ssh.idle_close_seconds,
    )
    return SshAdapter(
        name,
        pool,
        ssh.service_user,
        site.workspace_root,
        dir_mode=site.workspace_dir_mode,
        file_mode=site.workspace_file_mode,
    )


class Sites:
    """The configured sites and their adapters, created lazily and kept for reuse."""

    def __init__(
        self,
        settings: Mapping[str, SiteSettings],
        builder: Callable[[str, SiteSettings], SchedulerAdapter] = build_adapter,
    ) -> None:
        self._settings = dict(settings)
        self._builder = builder
        self._adapters: dict[str, SchedulerAdapter] = {}
        #: Adapters are built on first use, possibly by several worker threads at once.
        self._building = threading.Lock()

    def settings(self, name: str) -> SiteSettings:
        try:
            return self._settings[name]
        except KeyError:
            raise UnknownSite(name) from None

    def adapter(self, name: str) -> SchedulerAdapter:
        adapter = self._adapters.get(name)
        if adapter is None:
            with self._building:
                if name not in self._adapters:
                    self._adapters[name] = self._builder(name, self.settings(name))
                adapter = self._adapters[name]
        return adapter

    def names(self) -> Iterator[str]:
        return iter(self._settings)

    def close(self) -> None:
        for adapter in self._adapters.values():
            adapter.close()
        self._adapters.clear()


@dataclass(frozen=True)
class SiteReport:
    """What probing one site found: the headline facts plus everything it said."""

    site: str
    adapter: str
    ok: bool
    cluster: str = "?"
    slurm_release: str = "?"
    dialect: str = "?"
    rtt_ms: str = "?"
    error: str | None = None
    facts: Mapping[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        """Every fact, then the headline and ``ok``/``error`` (for ``--json``)."""
        out: dict[str, object] = {"site": self.site, "adapter": self.adapter, **self.facts}
        out.update(cluster=self.cluster, slurm_release=self.slurm_release)
        out.update(dialect=self.dialect, rtt_ms=self.rtt_ms, ok=self.ok)
        if self.error is not None:
            out["error"] = self.error
        return out


def probe_site(sites: Sites, name: str) -> SiteReport:
    """``check()`` one site; a failure (down, unsupported API) is reported, not raised."""
    adapter_kind = sites.settings(name).adapter
    try:
        facts = sites.adapter(name).check()
    except (HpcError, ValueError) as exc:
        return SiteReport(site=name, adapter=adapter_kind, ok=False, error=str(exc))
    return SiteReport(
        site=name,
        adapter=adapter_kind,
        ok=True,
        cluster=facts.get("cluster", "?"),
        slurm_release=facts.get("slurm_release", "?"),
        dialect=facts.get("dialect", "?"),
        rtt_ms=facts.get("rtt_ms", "?"),
        facts=facts,
    )


def log_sites(sites: Sites) -> list[SiteReport]:
    """Probe every site once at worker start and log what it is (or why it is not
    usable, e.g. a slurmrestd offering no dialect we speak, with what it offers).

    A failing site is only logged: the worker serves the other sites, and the
    failing one's jobs wait or fail by the error tree when they are dispatched.
    """
    reports = [probe_site(sites, name) for name in sites.names()]
    for r in reports:
        if r.ok:
            log.info(
                "site %s: %s cluster %s, Slurm %s, dialect %s",
                r.site,
                r.adapter,
                r.cluster,
                r.slurm_release,
                r.dialect,
            )
        else:
            log.error("site %s (%s) is not usable now: %s", r.site, r.adapter, r.error)
    return reports
