"""Admin HTTP endpoints for the user sync (role ``hpc-admin`` only).

=====================================  ==============================================
``POST /admin/users/sync[?dryRun=true]``  run the sync (or only plan it); the report
``GET  /admin/users``                     portal user -> HPC login mappings
``GET  /admin/users/audit[?limit=N]``     recent audit entries, newest first
``POST /admin/users/<name>/relink``       give a re-created account its login back
=====================================  ==============================================

Authentication is the app's ``before_request`` hook (these paths are not
public); errors are :mod:`gateway.errors` rendered by the app's handlers.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from gateway.errors import Conflict, ServiceUnavailable
from gateway.http.security import current_principal
from gateway.identity.auth import ROLE_ADMIN, Principal, require_role
from gateway.identity.identity_map import IdentityStore
from gateway.paging import DEFAULT_AUDIT_LIMIT, parse_limit

blueprint = Blueprint("hpcgw_admin_users", __name__)


def _admin() -> tuple[Principal, Any]:
    principal = current_principal()
    require_role(principal, ROLE_ADMIN)
    return principal, current_app.extensions["hpcgw"]


def _flag(name: str) -> bool:
    """A yes/no query parameter (``1``, ``true``, ``yes``; absent: no)."""
    return request.args.get(name, "false").lower() in ("1", "true", "yes")


@blueprint.post("/admin/users/sync")
def run_sync() -> Response:
    from gateway.usersync import SyncError, sync_users

    principal, services = _admin()
    dry_run = _flag("dryRun")
    force = _flag("force")
    try:
        report = sync_users(
            services.settings,
            services.engine,
            dry_run=dry_run,
            force=force,
            actor=f"admin:{principal.username}",
        )
    except SyncError as exc:
        raise ServiceUnavailable(f"the user sync could not run: {exc}") from None
    return jsonify(report.to_dict())


@blueprint.post("/admin/users/<username>/relink")
def relink_user(username: str) -> Response:
    """``hpcgw users relink`` over HTTP (see :mod:`gateway.usersync.relink`)."""
    from gateway.usersync.relink import RelinkError, relink
    from gateway.usersync.source import DirectoryError, KeycloakDirectory

    principal, services = _admin()
    dry_run = _flag("dryRun")
    directory = KeycloakDirectory(services.settings.usersync.keycloak)
    try:
        done = relink(
            services.engine,
            directory,
            username,
            dry_run=dry_run,
            actor=f"admin:{principal.username}",
        )
    except RelinkError as exc:
        raise Conflict(f"relink refused: {exc}") from None
    except DirectoryError as exc:
        raise ServiceUnavailable(f"Keycloak could not be read: {exc}") from None
    return jsonify(done.to_dict())


@blueprint.get("/admin/users")
def list_mappings() -> Response:
    _, services = _admin()
    return jsonify(
        [
            {
                "sub": i.sub,
                "username": i.username,
                "hpc_login": i.hpc_login,
                "status": i.status.value,
                "accounts": list(i.accounts),
                "updated": i.updated.isoformat(),
            }
            for i in IdentityStore(services.engine).all()
        ]
    )


@blueprint.get("/admin/users/audit")
def audit() -> Response:
    from gateway.usersync import AuditLog

    _, services = _admin()
    limit = parse_limit(request.args.get("limit"), default=DEFAULT_AUDIT_LIMIT)
    rows = AuditLog(services.engine).recent(limit)
    for row in rows:
        row["at"] = row["at"].isoformat()
    return jsonify(rows)
