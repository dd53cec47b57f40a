"""Deployed CWL application packages: OGC API - Processes - Part 2 (Deploy, Replace, Undeploy).

Core, not a surface (no Flask): the HTTP routes are :mod:`gateway.ogcapi.routes_deploy`.

* ``body``: the request body (ogcapppkg JSON, CWL YAML/JSON) -> a CWL mapping; hostile
  documents (aliases, nesting, ``$import``/``$include``, external ``run``) refused;
* ``cwl``: cwl-utils reads the CWL; its inputs/outputs/resources -> a
  :class:`~processes.package.PackagedDefinition`;
* ``validate``: cwltool's own validation, fetching nothing but the package;
* ``policy``: refused requirements (shell, InitialWorkDir, required containers), resource caps;
* ``tables``, ``store``: the deployed processes and every package version, in the job store's DB;
* ``service``: :class:`~gateway.apppkg.service.DeployService`, the rules (role, ownership,
  immutable built-ins, 409) and the audit log.
"""
