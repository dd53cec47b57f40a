"""Pages for HPC-centre administrators (role ``hpc-admin``).

=========================  =========================================================
``GET /ui/admin``           site health (the federation's probes), the latest
                            user-sync audit entries, links to everyone's jobs and
                            the accounting dashboard
=========================  =========================================================

The data are the admin APIs' own (``/status/sites``, ``/admin/users/audit``):
the same functions, drawn as a page.
"""

from __future__ import annotations

from flask import Blueprint, render_template

from gateway.http.security import current_principal
from gateway.identity.auth import ROLE_ADMIN, require_role
from gateway.routing.routes import site_statuses
from gateway.web.context import error_page, web

blueprint = Blueprint("web_admin", __name__, template_folder="templates")
blueprint.register_error_handler(Exception, error_page)

#: User-sync audit entries shown.
AUDIT_ROWS = 50


@blueprint.get("/ui/admin")
def admin_home() -> str:
    require_role(current_principal(), ROLE_ADMIN)
    from gateway.usersync import AuditLog

    services = web().services
    return render_template(
        "web/admin.html",
        sites=site_statuses(services),
        audit=AuditLog(services.engine).recent(AUDIT_ROWS),
    )
