"""ogc-hpc-gateway: OGC API - Processes and WPS on a Slurm cluster, jobs run as their users.

Module map (the full picture is ``docs/architecture.md``)::

    app            composition root: build_services, build_worker, create_app
    services       Services, the record of shared parts (a leaf: imports no surface)
    settings       configuration tree (settings_workflow: workflow/publication sections)
    db, migrations engine and Alembic migrations
    errors         HTTP-facing exception tree -> OGC / WPS exception documents
    backoff        the one backoff formula and retryable HTTP statuses
    paging         page-limit constants and the one limit parser
    sites          one scheduler adapter per configured site
    doctor         read-only deployment checks (``hpcgw doctor``)

    jobs/          records, states, store, status document, execute request, JobService
    apppkg/        deployed CWL application packages (Part 2): body, CWL mapping, store, rules
    routing/       which site runs a job and why: policy, locality, cached queue readings
    identity/      auth (Principal, authenticators), oidc, identity_map (user -> HPC login)
    egress/        guarded outbound requests
    staging/       inputs by reference -> job workspace
    workflow/      worker loop: dispatcher, monitor, finaliser, callbacks, retry, errors
    publication/   publisher (local/S3), footprints, STAC Items, retention
    accounting/    quotes, budgets, usage, metrics (routes, cli: its surfaces)
    usersync/      portal users -> Slurm associations (admin_api: its surface)
    triggers/      stored rules that start jobs on events, the feed poller (routes, cli: surfaces)

    http/          shared by the Flask surfaces: authentication hook, JSON helpers, trusted proxies
    ogcapi/        surface: OGC API - Processes (pygeoapi inside)
    wps/           surface: WPS 1.0.0 / 2.0.0
    web/           surface: pages for people (Keycloak sign-in, forms, job pages, map)
    cli, wsgi      surface: the ``hpcgw`` command, gunicorn

Arrows point from surfaces to the core, never back.
"""

__version__ = "0.1.0"
