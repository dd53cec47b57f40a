"""``hpcgw doctor``: check a deployment and say what to fix, changing nothing.

Each check returns :class:`Finding` records (what was checked, whether it is
fine, what was found or what to do). The checks only read: the database is
opened as it is (a missing SQLite file is reported, never created), sites are
probed with ``check()`` as ``hpcgw sites check`` does, the identity provider's
discovery and keys are fetched, and storage is tested with a temporary file
that is removed straight away.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from gateway import db
from gateway.settings import Settings

#: Adapters whose workspaces live on a filesystem this host mounts (ssh: over SFTP).
_LOCAL_WORKSPACE_ADAPTERS = ("slurmrest", "pyslurm")


@dataclass(frozen=True)
class Finding:
    """One checked fact: ``ok``, or a problem and how to fix it."""

    check: str
    ok: bool
    detail: str


def run_checks(settings: Settings) -> list[Finding]:
    """Every check of :func:`checks`, in order; a check that raises is a failed finding."""
    findings: list[Finding] = []
    for name, check in checks(settings):
        try:
            findings.extend(check())
        except Exception as exc:  # noqa: BLE001 -- a doctor reports, it does not crash
            findings.append(Finding(name, False, f"the check itself failed: {exc!r}"))
    return findings


def checks(settings: Settings) -> Iterator[tuple[str, Callable[[], list[Finding]]]]:
    yield "database", lambda: [check_database(settings.database.url)]
    yield "sites", lambda: check_sites(settings)
    if settings.auth.mode == "oidc":
        yield "oidc", lambda: [check_oidc(settings)]
    yield "workspaces", lambda: check_workspaces(settings)
    yield "publication", lambda: [check_writable("publication", Path(settings.publication.root))]


def check_database(url: str) -> Finding:
    """Reachable and migrated to the head revision(s) of this release."""
    parsed = sa.engine.make_url(url)
    where = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).is_file():
            return Finding(
                "database", False, f"{where}: no such file; create it with `hpcgw db upgrade`"
            )
    heads = set(ScriptDirectory.from_config(db.alembic_config(url)).get_heads())
    engine = sa.create_engine(url)
    try:
        current = db.current_revision(engine)
    except sa.exc.SQLAlchemyError as exc:
        return Finding(
            "database", False, f"{where}: cannot connect: {exc.__class__.__name__}: {exc}"
        )
    finally:
        engine.dispose()
    if current not in heads:
        return Finding(
            "database",
            False,
            f"{where}: schema at revision {current or 'none (empty)'}, this release needs "
            f"{', '.join(sorted(heads))}: back it up, then run `hpcgw db upgrade`",
        )
    return Finding("database", True, f"{where}: reachable, at revision {current} (head)")


def check_sites(settings: Settings) -> list[Finding]:
    """Every site's scheduler answers and speaks a dialect we know (``hpcgw sites check``)."""
    from gateway.sites import Sites, probe_site

    sites = Sites(settings.sites)
    try:
        reports = [probe_site(sites, name) for name in sites.names()]
    finally:
        sites.close()
    return [
        Finding(
            f"site {r.site}",
            r.ok,
            f"{r.adapter}: cluster {r.cluster}, Slurm {r.slurm_release}, dialect {r.dialect}"
            if r.ok
            else f"{r.adapter}: {r.error} (check the site's URL/host, credentials and service)",
        )
        for r in reports
    ]


def check_oidc(settings: Settings) -> Finding:
    """The issuer's discovery document and JWKS can be read and hold signing keys."""
    from gateway.identity.oidc import ProviderUnavailable, provider_keys

    issuer = settings.auth.oidc.issuer
    try:
        jwks_uri, count = provider_keys(settings.auth.oidc)
    except ProviderUnavailable as exc:
        return Finding("oidc", False, f"{issuer}: {exc} (check auth.oidc.issuer and TLS)")
    return Finding("oidc", True, f"{issuer}: discovery ok, {count} signing key(s) at {jwks_uri}")


def check_workspaces(settings: Settings) -> list[Finding]:
    """Each local workspace root: a folder this account can create job folders in.

    Not running as root, the gateway does not chown: the root must then be
    set-group-ID and group-writable so that jobs (as the users) and the gateway
    share the files (``hpc_adapters.localfs``).
    """
    findings = []
    for name, site in settings.sites.items():
        check = f"workspace {name}"
        if site.adapter not in _LOCAL_WORKSPACE_ADAPTERS:
            findings.append(Finding(check, True, f"{site.adapter}: on the login node, not checked"))
            continue
        root = Path(site.workspace_root)
        problem = _workspace_problem(root)
        findings.append(Finding(check, problem is None, problem or f"{root}: usable"))
    return findings


def _workspace_problem(root: Path) -> str | None:
    try:
        info = root.stat()
    except OSError as exc:
        return f"{root}: {exc.strerror}; create it on the shared filesystem"
    if not stat.S_ISDIR(info.st_mode):
        return f"{root}: not a directory"
    if not os.access(root, os.W_OK | os.X_OK):
        return f"{root}: not writable by this account (uid {os.geteuid()})"
    if os.geteuid() != 0 and not (info.st_mode & stat.S_ISGID and info.st_mode & stat.S_IWGRP):
        return (
            f"{root}: mode {stat.filemode(info.st_mode)}; without root the gateway does not "
            "chown: run the worker as root with CAP_CHOWN (deploy/systemd/chown-workspaces.conf) "
            "or make the root set-group-ID and group-writable (chmod 2770)"
        )
    return None


def check_writable(check: str, folder: Path) -> Finding:
    """``folder`` exists and takes a file (written and removed again)."""
    if not folder.is_dir():
        return Finding(check, False, f"{folder}: no such folder; create it for the service account")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".hpcgw-doctor-"):
            pass
    except OSError as exc:
        return Finding(check, False, f"{folder}: cannot write a file: {exc.strerror}")
    return Finding(check, True, f"{folder}: writable")


def report(findings: list[Finding]) -> str:
    """The findings as a readable list, then what to fix (if anything)."""
    width = max((len(f.check) for f in findings), default=0)
    lines = [f"{'ok' if f.ok else 'FAIL':4}  {f.check.ljust(width)}  {f.detail}" for f in findings]
    problems = [f for f in findings if not f.ok]
    if problems:
        lines += ["", f"{len(problems)} problem(s) to fix:"]
        lines += [f"  - {f.check}: {f.detail}" for f in problems]
    else:
        lines += ["", "everything checked is fine"]
    return "\n".join(lines)
