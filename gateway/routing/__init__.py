"""Routing: which configured site runs a job, and a reason a person can read.

* :mod:`.config` -- the ``routing:`` settings section;
* :mod:`.policy` -- the documented order of rules, pure (unit-tested);
* :mod:`.locality` -- which inputs by reference are local to a site, pure;
* :mod:`.readings` -- each site's queue and associations, cached a few seconds
  (one or two scheduler calls per site per period, never one per job);
* :mod:`.router` -- gathers the facts of every site for one request and decides;
* :mod:`.health` (+ :mod:`.tables`) -- the worker's periodic probe of each site, kept
  in the database; :mod:`.failover` -- re-routes accepted jobs of a down site;
* :mod:`.routes` -- surface: ``GET /status/sites``.

See docs/federation.md.
"""
