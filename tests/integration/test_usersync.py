"""User sync against the real slurmdbd (sacctmgr), real unix accounts and the real Keycloak.

Uses test-only names so the shared cluster's alice/bob are never touched:
Keycloak group ``/gep-test`` -> Slurm account ``gep_test``, users ``carol`` and
``dave`` -> HPC logins ``gep_carol``/``gep_dave`` (rule ``gep_{preferred_username}``),
unix accounts created through the default ``useradd`` hook. Everything is
removed again after each test (the Keycloak group and users included; they are
created through the admin API in the shared ``gep`` realm).
"""

from __future__ import annotations

import pwd
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from gateway import db
from gateway.cli import app as cli_app
from gateway.identity.identity_map import IdentityStatus, IdentityStore
from gateway.jobs.tables import usersync_audit
from gateway.settings import Settings
from gateway.usersync import SyncError, sync_users
from tests.conftest import JWT_KEY, SLURMRESTD, make_settings
from tests.identity_fixtures import (
    Keycloak,
    delete_group,
    delete_users,
    fresh_group,
    fresh_user,
    keycloak,
    usersync_config,
)
from tests.polling import eventually

pytestmark = [pytest.mark.slurm, pytest.mark.needs_root("creates unix and Slurm users")]

__all__ = ["keycloak"]

GROUP, ACCOUNT = "/gep-test", "gep_test"
LOGINS = ("gep_carol", "gep_dave", "gep_erin")


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=60)


def _cleanup() -> None:
    for login in LOGINS:
        _run("scancel", f"--user={login}")
        _run("sacctmgr", "-i", "delete", "user", "where", f"name={login}")
        _run("userdel", "--remove", login)
    _run("sacctmgr", "-i", "delete", "account", f"name={ACCOUNT}")


def _associations() -> set[tuple[str, str]]:
    out = _run(
        "sacctmgr",
        "-nP",
        "show",
        "association",
        "where",
        f"accounts={ACCOUNT}",
        "format=user,account",
    ).stdout
    return {tuple(line.split("|")) for line in out.splitlines() if line.split("|")[0]}  # type: ignore[misc]


def _account_exists() -> bool:
    return bool(
        _run("sacctmgr", "-nP", "show", "account", ACCOUNT, "format=account").stdout.strip()
    )


def _unix_exists(login: str) -> bool:
    try:
        pwd.getpwnam(login)
    except KeyError:
        return False
    return True


def _expiry(login: str) -> str:
    for line in _run("chage", "--list", login).stdout.splitlines():
        if line.startswith("Account expires"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no expiry line for {login}")


def _sbatch_as(login: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """sbatch run directly as the user's uid (setuid, no PAM): what Slurm itself decides."""
    pw = pwd.getpwnam(login)
    return subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--chdir=/tmp",
            "--output=/dev/null",
            "--time=1",
            *extra,
            "--wrap",
            "sleep 120",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        user=pw.pw_uid,
        group=pw.pw_gid,
        extra_groups=[],
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )


def _until(predicate: Any, timeout: float = 20.0) -> Any:
    return eventually(predicate, timeout, "the Slurm/unix state the sync set up", every=0.5)


def _rest_submit(login: str) -> dict[str, Any]:
    """Submit through slurmrestd with a minted per-user token (trusted-service mode)."""
    now = int(time.time())
    token = jwt.encode(
        {"sun": login, "iat": now, "exp": now + 60}, Path(JWT_KEY).read_bytes(), "HS256"
    )
    body = {
        "job": {
            "name": "usersync-test",
            "current_working_directory": "/tmp",
            "standard_output": "/dev/null",
            "time_limit": 1,
            "environment": {"PATH": "/usr/bin:/bin"},
        },
        "script": "#!/bin/bash\nsleep 120\n",
    }
    resp = httpx.post(
        f"{SLURMRESTD}/slurm/v0.0.38/job/submit",
        json=body,
        timeout=30,
        headers={"X-SLURM-USER-NAME": login, "X-SLURM-USER-TOKEN": token},
    )
    return dict(resp.json())


REALM_USERS = ("carol", "dave", "frank.smith")


@pytest.fixture
def realm(cluster: str, keycloak: Keycloak) -> Iterator[Keycloak]:
    """Group /gep-test with carol, dave and frank.smith (not a valid login) in the realm."""
    fresh_group(keycloak, GROUP)
    for name in REALM_USERS:
        fresh_user(keycloak, name, roles=("hpc-user",), groups=(GROUP,))
    _cleanup()
    yield keycloak
    delete_users(keycloak, *REALM_USERS)
    delete_group(keycloak, GROUP)
    _cleanup()


@pytest.fixture
def settings(realm: Keycloak, tmp_path: Path) -> Settings:
    # Test users get uids from a range of their own, so a uid freed by the clean-up is
    # never reused by a real user (accounting history is keyed by uid).
    create = [
        "useradd",
        "--create-home",
        "--user-group",
        "--shell",
        "/bin/bash",
        "--key",
        "UID_MIN=61000",
        "--key",
        "UID_MAX=61999",
        "--key",
        "GID_MIN=61000",
        "--key",
        "GID_MAX=61999",
        "{login}",
    ]
    sync = usersync_config(realm, groups={GROUP: ACCOUNT}, unix={"create": create})
    s = make_settings(
        tmp_path, usersync=sync, auth={"identity": {"rule": "gep_{preferred_username}"}}
    )
    db.upgrade(s.database.url)
    return s


def _engine(settings: Settings) -> sa.Engine:
    return db.make_engine(settings.database.url)


def _audit_rows(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(usersync_audit))]


def _group_id(kc: Keycloak) -> str:
    return str(kc.admin().get_group_by_path(GROUP)["id"])


def _group_remove(kc: Keycloak, username: str) -> None:
    kc.admin().group_user_remove(kc.user_id(username), _group_id(kc))


def _group_add(kc: Keycloak, username: str) -> None:
    kc.admin().group_user_add(kc.user_id(username), _group_id(kc))


def _set_enabled(kc: Keycloak, username: str, enabled: bool) -> None:
    kc.admin().update_user(kc.user_id(username), {"enabled": enabled})


def test_dry_run_prints_the_plan_and_changes_nothing(settings: Settings, tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    result = CliRunner().invoke(cli_app, ["users", "sync", "--dry-run", "--config", str(config)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "dry run, nothing changed" in out
    assert "create carol -> gep_carol" in out and "create dave -> gep_dave" in out
    assert "sacctmgr --immediate add user name=gep_carol account=gep_test" in out
    assert "useradd" in out and "skipped frank.smith" in out
    assert not _account_exists() and not _associations()
    assert not any(_unix_exists(login) for login in LOGINS)
    engine = _engine(settings)
    assert IdentityStore(engine).all() == [] and _audit_rows(engine) == []


def test_sync_creates_is_idempotent_and_disabled_users_cannot_submit(
    settings: Settings, realm: Keycloak
) -> None:
    engine = _engine(settings)
    store = IdentityStore(engine)

    # -- first run: account, unix users, associations, mappings, audit
    report = sync_users(settings, engine, actor="test")
    assert report.ok, report.lines()
    assert _account_exists()
    assert _associations() == {("gep_carol", ACCOUNT), ("gep_dave", ACCOUNT)}
    assert _unix_exists("gep_carol") and _unix_exists("gep_dave")
    assert 61000 <= pwd.getpwnam("gep_carol").pw_uid <= 61999
    mapped = {i.hpc_login: i for i in store.all()}
    assert set(mapped) == {"gep_carol", "gep_dave"}
    assert mapped["gep_carol"].sub == realm.user_id("carol")
    assert mapped["gep_carol"].active and mapped["gep_carol"].accounts == (ACCOUNT,)
    actions = [(r["action"], r["outcome"]) for r in _audit_rows(engine)]
    assert ("create_account", "ok") in actions and ("add_association", "ok") in actions
    assert ("create_unix_user", "ok") in actions and ("save_mapping", "ok") in actions

    # -- second run: nothing to do, nothing run
    rows_before = len(_audit_rows(engine))
    again = sync_users(settings, engine, actor="test")
    assert again.plan.empty and again.results == [], again.lines()
    assert [r["action"] for r in _audit_rows(engine)[rows_before:]] == ["sync_run"]

    # -- the provisioned user can submit, directly and through slurmrestd
    ok = _until(lambda: (r := _sbatch_as("gep_carol")).returncode == 0 and r)
    assert ok, "gep_carol could not submit after the sync"
    rest = _rest_submit("gep_carol")
    assert rest.get("job_id"), rest
    _run("scancel", ok.stdout.strip().split(";")[0], str(rest["job_id"]))

    # dave has a pending job when he is removed: it is cancelled, then the association goes
    held = _until(lambda: (r := _sbatch_as("gep_dave", "--hold")).returncode == 0 and r)
    assert held, "gep_dave could not submit after the sync"
    held_id = held.stdout.strip().split(";")[0]

    # -- carol and dave leave the portal group: disabled, not deleted
    _group_remove(realm, "carol")
    _set_enabled(realm, "dave", False)
    report = sync_users(settings, engine, actor="test")
    assert report.ok, report.lines()
    assert {c.kind.value for c in report.plan.changes} == {"disable"}
    assert _associations() == set()
    assert _run("squeue", "-h", "-j", held_id, "-o", "%T").stdout.strip() in ("", "CANCELLED")
    assert {i.hpc_login: i.status for i in store.all()} == {
        "gep_carol": IdentityStatus.DISABLED,
        "gep_dave": IdentityStatus.DISABLED,
    }
    assert _unix_exists("gep_carol")  # kept (locked), never deleted
    assert _expiry("gep_carol") != "never"  # the hook expired the unix account

    # -- a disabled user can no longer submit: sbatch and slurmrestd both refuse
    refused = _until(lambda: (r := _sbatch_as("gep_carol")).returncode != 0 and r)
    assert refused, "gep_carol could still submit after being disabled"
    assert "Invalid account" in refused.stderr or "association" in refused.stderr.lower()
    rest = _rest_submit("gep_carol")
    assert not rest.get("job_id") and rest.get("errors"), rest

    # -- and the disable is idempotent too
    assert sync_users(settings, engine, actor="test").plan.empty

    # -- carol comes back: enabled again with her old login
    _group_add(realm, "carol")
    report = sync_users(settings, engine, actor="test")
    assert [(c.kind.value, c.login) for c in report.plan.changes] == [("enable", "gep_carol")]
    assert report.ok, report.lines()
    assert ("gep_carol", ACCOUNT) in _associations()
    assert _expiry("gep_carol") == "never"
    assert store.get(realm.user_id("carol")).active  # type: ignore[union-attr]
    back = _until(lambda: (r := _sbatch_as("gep_carol")).returncode == 0 and r)
    assert back, "gep_carol could not submit after being enabled again"
    _run("scancel", back.stdout.strip().split(";")[0])


def test_mass_disable_is_refused_without_force(settings: Settings, realm: Keycloak) -> None:
    engine = _engine(settings)
    assert sync_users(settings, engine).ok
    for name in ("carol", "dave"):
        _group_remove(realm, name)
    strict = settings.model_copy(
        update={"usersync": settings.usersync.model_copy(update={"max_disables": 1})}
    )
    with pytest.raises(SyncError, match="max_disables"):
        sync_users(strict, engine)
    assert len(_associations()) == 2  # nothing was changed
    assert sync_users(strict, engine, force=True).ok
    assert _associations() == set()


def test_unreachable_directory_changes_nothing(settings: Settings) -> None:
    """Keycloak not answering (a port nothing listens on; the outage itself, a frozen
    Keycloak, is in test_identity_keys.py): the sync refuses and changes nothing."""
    engine = _engine(settings)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    unreachable = settings.usersync.keycloak.model_copy(update={"server_url": closed})
    down = settings.model_copy(
        update={"usersync": settings.usersync.model_copy(update={"keycloak": unreachable})}
    )
    with pytest.raises(SyncError, match="Keycloak"):
        sync_users(down, engine)
    assert not _account_exists() and IdentityStore(engine).all() == []
