"""Accounting: cost quotes before execution, core-hours from Slurm accounting after it.

Module map (the package is wired by the composition root, :mod:`gateway.app`,
through :mod:`gateway.accounting.service`):

* ``config``   -- the ``accounting:`` settings section (imports nothing else);
* ``tables``   -- usage records, pending usage reads, budgets (SQLAlchemy Core);
* ``periods``  -- budget periods (day ... year, total) and their UTC bounds;
* ``quotes``   -- pricing and the cost estimator (walltime, input sizes, history);
* ``budgets``  -- budget store and the submission-time check (``QuotaExceeded``);
* ``usage``    -- usage recorder: ``sacct``/slurmdb -> usage rows, retried until final;
* ``metrics``  -- Prometheus: event metrics + database collector, ``/metrics``;
* ``instrument`` -- adapter proxy timing every scheduler call;
* ``reports``  -- grouped usage reports (CLI, ``/accounting/usage``, dashboard);
* ``charts``, ``dashboard`` -- the server-side SVG dashboard page;
* ``routes``   -- Flask blueprint; ``cli`` -- ``hpcgw accounting ...``.

This ``__init__`` stays import-free on purpose: :mod:`gateway.settings`
imports ``gateway.accounting.config`` and must not pull in the rest.
"""
