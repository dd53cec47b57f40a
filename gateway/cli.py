"""``hpcgw``: serve the API, run workers, migrate the database, check sites."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway.accounting.cli import accounting_app
from gateway.backoff import backoff_delay
from gateway.settings import ConfigError, Settings, load_settings
from gateway.triggers.cli import triggers_app

if TYPE_CHECKING:
    from gateway.sites import SiteReport

app = typer.Typer(
    help="OGC API - Processes / WPS gateway to a Slurm cluster.", no_args_is_help=True
)
db_app = typer.Typer(help="Job-store database.", no_args_is_help=True)
sites_app = typer.Typer(help="HPC sites.", no_args_is_help=True)
users_app = typer.Typer(help="Portal users -> HPC accounts.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(sites_app, name="sites")
app.add_typer(users_app, name="users")
app.add_typer(accounting_app, name="accounting")
app.add_typer(triggers_app, name="triggers")

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML configuration file (else $HPCGW_CONFIG)."),
]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except (ConfigError, ValueError) as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None


def _logging(settings: Settings, level: str | None = None) -> None:
    """The process's log lines, in the configured format (``logging:``; see gateway.logs)."""
    from gateway.logs import configure

    configure(settings.logging, level)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None, revision: str = "head") -> None:
    """Run the Alembic migrations of the job store up to REVISION."""
    from gateway import db

    settings = _settings(config)
    db.upgrade(settings.database.url, revision)
    typer.echo(f"database at revision {revision}: {settings.database.url.split('@')[-1]}")


@app.command()
def worker(
    config: ConfigOpt = None,
    once: Annotated[bool, typer.Option(help="Run a single cycle and exit.")] = False,
) -> None:
    """Run the dispatcher, monitor, finaliser and cleaner until interrupted."""
    from gateway.app import build_services, build_worker
    from gateway.sites import log_sites

    settings = _settings(config)
    _logging(settings)
    _metrics_dir(settings, clean=False)
    if settings.database.auto_upgrade:
        _migrate_in_child(config)
        settings.database.auto_upgrade = False
    services = build_services(settings)
    log_sites(services.sites)
    w = build_worker(services)
    # rasterio (GDAL) for publication records: loaded now, not on the first job's end
    import gateway.publication.footprint  # noqa: F401

    if once:
        w.run_once()
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        w.run_forever(stop)
    finally:
        services.close()


@app.command()
def serve(
    config: ConfigOpt = None,
    with_worker: Annotated[
        bool | None, typer.Option(help="Also run one worker process (default: settings).")
    ] = None,
) -> None:
    """Serve the HTTP API with gunicorn (production WSGI server)."""
    from gateway.wsgi import GatewayServer

    settings = _settings(config)
    _logging(settings)
    _metrics_dir(settings, clean=True)
    if settings.database.auto_upgrade:
        _migrate_in_child(config)
    supervisor = None
    if settings.server.embedded_worker if with_worker is None else with_worker:
        args = [sys.executable, "-m", "gateway.cli", "worker"]
        if config is not None:
            args += ["--config", str(config)]
        supervisor = _WorkerSupervisor(args, {"HPCGW_DATABASE__AUTO_UPGRADE": "false"})
        supervisor.start()
    try:
        GatewayServer(settings, config).run()
    finally:
        if supervisor is not None:
            supervisor.stop()


def _migrate_in_child(config: Path | None) -> None:
    """``hpcgw db upgrade`` in a child process: a long-running server or worker then never
    loads Alembic (with Mako and Pygments, ~11 MiB that every gunicorn worker forked from
    the server would carry). Exits with the child's status if the migration fails."""
    args = [sys.executable, "-m", "gateway.cli", "db", "upgrade"]
    if config is not None:
        args += ["--config", str(config)]
    done = subprocess.run(args, stdout=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        typer.echo("the job store's migration failed (see above); not starting", err=True)
        raise typer.Exit(done.returncode)


class _WorkerSupervisor(threading.Thread):
    """Keeps one ``hpcgw worker`` child alive next to the server, restarting it with backoff."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        super().__init__(name="hpcgw-worker-supervisor", daemon=True)
        self.args = args
        self.env = {**os.environ, **env}
        self._halt = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None

    def run(self) -> None:
        restarts = 0
        while not self._halt.is_set():
            self._child = subprocess.Popen(self.args, env=self.env)
            code = self._child.wait()
            if self._halt.is_set() or code in (0, -signal.SIGTERM, -signal.SIGINT):
                return  # stopped on purpose (e.g. the whole process group got SIGTERM)
            restarts += 1
            delay = backoff_delay(restarts, 1.0, 60.0)
            logging.getLogger(__name__).error(
                "worker exited with status %s; restarting in %.0fs", code, delay
            )
            self._halt.wait(delay)

    def stop(self) -> None:
        self._halt.set()
        if self._child is not None and self._child.poll() is None:
            self._child.terminate()
            self._child.wait(timeout=30)


def _metrics_dir(settings: Settings, *, clean: bool) -> None:
    """Prometheus multiprocess mode for this process and its children (before any metric)."""
    from gateway.accounting.metrics_env import configure_multiprocess

    configure_multiprocess(settings.accounting.metrics.multiprocess_dir, clean=clean)


@app.command()
def doctor(
    config: ConfigOpt = None,
    test_user: Annotated[
        str | None,
        typer.Option(help="An HPC login whose jobs must be able to use the workspaces."),
    ] = None,
) -> None:
    """Check this deployment (database, sites, identity provider, storage); change nothing.

    Prints one line per check and what to fix; exit status 1 when something is wrong.
    """
    from gateway.doctor import report, run_checks

    settings = _settings(config)
    _logging(settings, "ERROR")
    findings = run_checks(settings, test_user)
    typer.echo(report(findings))
    raise typer.Exit(0 if all(f.ok for f in findings) else 1)


@sites_app.command("check")
def sites_check(
    config: ConfigOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per site, with every fact.")
    ] = False,
) -> None:
    """Probe every configured site: cluster, Slurm release, dialect, round trip."""
    from gateway.sites import Sites, probe_site

    settings = _settings(config)
    sites = Sites(settings.sites)
    reports = [probe_site(sites, name) for name in sites.names()]
    sites.close()
    if as_json:
        for report in reports:
            typer.echo(json.dumps(report.as_json()))
    else:
        typer.echo(_sites_table(reports))
    raise typer.Exit(0 if all(r.ok for r in reports) else 1)


def _sites_table(reports: list[SiteReport]) -> str:
    """A fixed-width table of the sites' headline facts (errors on their own line)."""
    header = ("SITE", "ADAPTER", "CLUSTER", "SLURM", "DIALECT", "RTT_MS", "STATUS")
    rows = [header]
    for r in reports:
        status = "ok" if r.ok else "DOWN"
        rows.append((r.site, r.adapter, r.cluster, r.slurm_release, r.dialect, r.rtt_ms, status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines += [f"{r.site}: {r.error}" for r in reports if r.error]
    return "\n".join(line.rstrip() for line in lines)


@app.command()
def cleanup(
    config: ConfigOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report only.")] = False,
    older_than_days: Annotated[
        float | None,
        typer.Option(help="Override workflow.retention.published_days for this run."),
    ] = None,
) -> None:
    """Apply the retention policy to published outputs and trim the input cache."""
    from gateway.jobs.store import JobStore
    from gateway.publication.publisher import s3_outputs
    from gateway.publication.retention import apply_retention
    from gateway.staging import build_cache

    settings = _settings(config)
    _logging(settings, "WARNING")
    engine = _engine(settings)
    try:
        report = apply_retention(
            JobStore(engine),
            Path(settings.publication.root).resolve(),
            older_than_days or settings.workflow.retention.published_days,
            build_cache(settings.workflow),
            dry_run=dry_run,
            s3=s3_outputs(settings.publication),
        )
    finally:
        engine.dispose()
    typer.echo(json.dumps(report.to_dict(), indent=2))
    if report.errors:  # e.g. S3 unreachable: cron / the timer unit sees the failure
        raise typer.Exit(1)


def _engine(settings: Settings) -> Any:
    from gateway.app import build_engine

    return build_engine(settings)


@users_app.command("sync")
def users_sync(
    config: ConfigOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan only.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Apply even beyond usersync.max_disables.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Synchronise Keycloak users/groups to Slurm associations and unix accounts.

    Exit status: 0 done (or nothing to do), 1 some steps failed, 3 the sync could not run.
    """
    from gateway.usersync import SyncError, sync_users

    settings = _settings(config)
    _logging(settings, "WARNING")
    engine = _engine(settings)
    try:
        report = sync_users(settings, engine, dry_run=dry_run, actor="cli", force=force)
    except SyncError as exc:
        typer.echo(f"user sync failed: {exc}", err=True)
        raise typer.Exit(3) from None
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for line in report.lines():
            typer.echo(line)
    raise typer.Exit(0 if report.ok else 1)


@users_app.command("relink")
def users_relink(
    username: Annotated[str, typer.Argument(help="The portal username (Keycloak).")],
    config: ConfigOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would move.")] = False,
) -> None:
    """Give USERNAME's HPC login, jobs and usage to its re-created Keycloak account.

    For an account deleted and created again (realm re-import, IdP migration): the
    sync never moves a login by itself. Refused while the old account still exists.
    Exit status: 0 moved (or would move), 1 refused, 3 Keycloak unreadable.
    """
    from gateway.usersync.relink import RelinkError, relink
    from gateway.usersync.source import DirectoryError, KeycloakDirectory

    settings = _settings(config)
    engine = _engine(settings)
    try:
        done = relink(
            engine, KeycloakDirectory(settings.usersync.keycloak), username, dry_run=dry_run
        )
    except RelinkError as exc:
        typer.echo(f"relink refused: {exc}", err=True)
        raise typer.Exit(1) from None
    except DirectoryError as exc:
        typer.echo(f"relink failed: {exc}", err=True)
        raise typer.Exit(3) from None
    finally:
        engine.dispose()
    for line in done.lines():
        typer.echo(line)


@users_app.command("list")
def users_list(config: ConfigOpt = None) -> None:
    """Print the portal user -> HPC login mappings."""
    from gateway.identity.identity_map import IdentityStore

    engine = _engine(_settings(config))
    for ident in IdentityStore(engine).all():
        accounts = ",".join(ident.accounts) or "-"
        typer.echo(
            f"{ident.hpc_login}\t{ident.status.value}\t{ident.username}\t{accounts}\t{ident.sub}"
        )
    engine.dispose()


@users_app.command("audit")
def users_audit(config: ConfigOpt = None, limit: Annotated[int, typer.Option(min=1)] = 50) -> None:
    """Print the most recent user-sync audit entries (newest first)."""
    from gateway.usersync import AuditLog

    engine = _engine(_settings(config))
    for row in AuditLog(engine).recent(limit):
        detail = row.get("detail") or {}
        typer.echo(
            f"{row['at']:%Y-%m-%d %H:%M:%S} {row['actor']} {row['action']} {row['outcome']} "
            f"{row.get('hpc_login') or '-'} {detail.get('command') or detail.get('summary', '')}"
        )
    engine.dispose()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
