"""OGC WPS 1.0.0 and 2.0.0 over the gateway's job service.

``register_wps(app, services, authenticator)`` mounts ``/wps`` (KVP over GET,
XML over POST) and ``/wps/status/<job id>`` (WPS 1.0.0 status documents).
WPS jobs are ordinary gateway jobs: submitted through
:class:`gateway.jobs.service.JobService`, visible at ``/jobs`` and subject to the
same identity, per-user isolation, quotas and accounting as OGC API jobs.

Modules: :mod:`.kvp` / :mod:`.xmlrequest` parse requests into :mod:`.model`
records; :mod:`.capabilities`, :mod:`.describe`, :mod:`.execute` and
:mod:`.status` build the answers; :mod:`.datatypes` maps the processes' JSON
schemas to WPS data kinds; :mod:`.exceptions` renders OWS exception reports.
"""

from gateway.wps.routes import register_wps

__all__ = ["register_wps"]
