"""``hpcgw doctor``: check a deployment and say what to fix, changing nothing.

Each check returns :class:`Finding` records (what was checked, whether it is
fine, what was found or what to do). The checks only read: the database is
opened as it is (a missing SQLite file is reported, never created), sites are
probed with ``check()`` as ``hpcgw sites check`` does, the identity provider's
discovery and keys are fetched, and storage is tested with a temporary file
that is removed straight away.
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from gateway import db
from gateway.settings import Settings, SiteSettings
from gateway.settings_workflow import S3PublicationSettings

#: Adapters whose workspaces live on a filesystem this host mounts (ssh: over SFTP).
_LOCAL_WORKSPACE_ADAPTERS = ("slurmrest", "pyslurm")


@dataclass(frozen=True)
class Finding:
    """One checked fact: ``ok``, or a problem and how to fix it."""

    check: str
    ok: bool
    detail: str


def run_checks(settings: Settings, test_user: str | None = None) -> list[Finding]:
    """Every check of :func:`checks`, in order; a check that raises is a failed finding.

    ``test_user``: an HPC login whose jobs must be able to use the workspaces.
    """
    findings: list[Finding] = []
    for name, check in checks(settings, test_user):
        try:
            findings.extend(check())
        except Exception as exc:  # noqa: BLE001 -- a doctor reports, it does not crash
            findings.append(Finding(name, False, f"the check itself failed: {exc!r}"))
    return findings


def checks(
    settings: Settings, test_user: str | None = None
) -> Iterator[tuple[str, Callable[[], list[Finding]]]]:
    yield "database", lambda: [check_database(settings.database.url)]
    yield "sites", lambda: check_sites(settings)
    if settings.auth.mode == "oidc":
        yield "oidc", lambda: [check_oidc(settings)]
    yield "workspaces", lambda: check_workspaces(settings, test_user)
    yield "publication", lambda: [check_writable("publication", Path(settings.publication.root))]
    if settings.publication.backend == "s3":
        yield "publication s3", lambda: [check_s3(settings.publication.s3)]


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


def check_workspaces(settings: Settings, test_user: str | None = None) -> list[Finding]:
    """Each local workspace root: a folder this account can create job folders in, that
    ``test_user``'s jobs can write to.

    Not running as root, the gateway does not chown: the root must then be
    set-group-ID and group-writable, ``workspace_dir_mode`` must let the group
    in, and every user must be in the root's group (``hpc_adapters.localfs``).
    """
    findings = []
    for name, site in settings.sites.items():
        check = f"workspace {name}"
        if site.adapter not in _LOCAL_WORKSPACE_ADAPTERS:
            findings.append(Finding(check, True, f"{site.adapter}: on the login node, not checked"))
            continue
        root = Path(site.workspace_root)
        problem = _workspace_problem(root) or _mode_problem(site)
        if problem is None and test_user is not None:
            problem = _user_problem(root, test_user)
        who = f" (jobs of {test_user} can use it)" if test_user is not None else ""
        findings.append(Finding(check, problem is None, problem or f"{root}: usable{who}"))
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


def _mode_problem(site: SiteSettings) -> str | None:
    """Without root, job folders must let the workspace group in (the users write there)."""
    if os.geteuid() == 0 or site.workspace_dir_mode & 0o070 == 0o070:
        return None
    return (
        f"workspace_dir_mode {site.workspace_dir_mode:o} keeps the group out: without root the "
        'users reach job folders through the workspace group; set workspace_dir_mode: "2770" '
        'and workspace_file_mode: "660"'
    )


def _user_problem(root: Path, login: str) -> str | None:
    """``login`` exists here and, without root, is in the workspace root's group."""
    try:
        entry = pwd.getpwnam(login)
    except KeyError:
        return f"no user {login!r} on this host: jobs run as the user's own account"
    if os.geteuid() == 0:
        return None  # the gateway hands each job folder to its user
    group = root.stat().st_gid
    if group not in os.getgrouplist(login, entry.pw_gid):
        name = _group_name(group)
        return f"{login} is not in group {name} of {root}: add them (usermod -aG {name} {login})"
    return None


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def check_s3(s3: S3PublicationSettings) -> Finding:
    """The bucket takes an object under the prefix (written and deleted again)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from gateway.publication.s3 import PublicationError, S3Outputs

    outputs = S3Outputs(s3)
    key = f"{s3.prefix}/.hpcgw-doctor-{secrets.token_hex(6)}".lstrip("/")
    try:
        client = outputs.client()
        client.put_object(Bucket=outputs.bucket, Key=key, Body=b"")
        client.delete_object(Bucket=outputs.bucket, Key=key)
    except (BotoCoreError, ClientError, PublicationError) as exc:
        return Finding(
            "publication s3",
            False,
            f"{outputs.where(key)}: cannot write an object: {exc} "
            "(check publication.s3: bucket, endpoint_url, credentials)",
        )
    return Finding("publication s3", True, f"{outputs.where(s3.prefix + '/')}: writable")


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
