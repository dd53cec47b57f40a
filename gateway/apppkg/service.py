"""Deploy, replace and undeploy application packages: the rules, whatever the surface.

* Only a caller with the ``hpc-deployer`` role (or an HPC admin) may deploy.
* **Ownership**: the user who deployed a process owns it; only that user
  (same identity-provider subject) or an HPC admin may replace or undeploy it.
  Another deployer gets 403 naming the owner.
* Built-in processes (``processes/<id>/``) are immutable: 403.
* Deploying an id that exists answers 409; replacing or undeploying one that
  does not, 404.
* Every deploy, replace and undeploy is written to the audit log
  (logger ``gateway.audit``) with the caller and the package digest.

It never talks HTTP; it raises :mod:`gateway.errors`.
"""

from __future__ import annotations

import logging

from gateway.apppkg.body import DeployRequest
from gateway.apppkg.cwl import package_definition
from gateway.apppkg.policy import SiteAbilities
from gateway.apppkg.store import AlreadyDeployed, DeployedStore, Deployment, NotDeployed
from gateway.errors import BadRequest, DuplicateProcess, Forbidden, ImmutableProcess, NoSuchProcess
from gateway.identity.auth import ROLE_DEPLOYER, Principal
from gateway.settings_apppkg import AppPkgSettings
from processes.package import PackagedDefinition
from processes.registry import ProcessRegistry

audit = logging.getLogger("gateway.audit")


class DeployService:
    """OGC API - Processes Part 2 on top of the deployed-process store."""

    def __init__(
        self,
        store: DeployedStore,
        registry: ProcessRegistry,
        settings: AppPkgSettings,
        sites: SiteAbilities = SiteAbilities(),  # noqa: B008 - frozen, never mutated
    ) -> None:
        self.store = store
        self.registry = registry
        self.settings = settings
        #: Sites declaring a container runtime / toil (packages requiring one run only there).
        self.sites = sites

    def may_deploy(self, principal: Principal) -> None:
        """Forbidden unless deploying is on and ``principal`` is a deployer (or an admin).

        Surfaces call it before reading a request body, so only deployers get
        their packages parsed and validated.
        """
        if not self.settings.enabled:
            raise Forbidden("deploying processes is turned off on this server (apppkg.enabled)")
        if not (principal.is_admin or ROLE_DEPLOYER in principal.roles):
            raise Forbidden(f"deploying processes needs the '{ROLE_DEPLOYER}' role")

    def _mutable(self, process_id: str) -> None:
        if self.registry.is_builtin(process_id):
            raise ImmutableProcess(
                f"process '{process_id}' is built into this gateway and cannot be "
                "replaced or undeployed"
            )

    def _owned(self, principal: Principal, process_id: str) -> Deployment:
        self._mutable(process_id)
        deployment = self.store.deployment(process_id)
        if deployment is None:
            raise NoSuchProcess(f"process '{process_id}' does not exist")
        if deployment.owner_sub != principal.sub and not principal.is_admin:
            raise Forbidden(
                f"process '{process_id}' was deployed by '{deployment.owner_name}'; only that "
                "user or an HPC admin may replace or undeploy it"
            )
        return deployment

    def deploy(
        self, principal: Principal, request: DeployRequest, entry: str
    ) -> PackagedDefinition:
        """Store a new process from ``request``; 409 if its id exists."""
        self.may_deploy(principal)
        definition = package_definition(request, entry, self.settings, self.sites)
        duplicate = f"process '{definition.id}' exists; replace it with PUT"
        if definition.id in self.registry:  # built-in or deployed: 409 (OGC 20-044)
            raise DuplicateProcess(duplicate)
        try:
            self.store.deploy(definition, principal.sub, principal.username)
        except AlreadyDeployed:
            raise DuplicateProcess(duplicate) from None
        audit.info(
            "process %s deployed by %s (package sha256:%s)",
            definition.id,
            principal.username,
            definition.digest,
        )
        return definition

    def replace(
        self, principal: Principal, process_id: str, request: DeployRequest, entry: str
    ) -> PackagedDefinition:
        """Make ``request`` the package of ``process_id``; jobs accepted before keep theirs."""
        self.may_deploy(principal)
        self._owned(principal, process_id)
        if "id" not in request.description:
            request = DeployRequest(
                request.cwl, request.text, {**request.description, "id": process_id}, request.config
            )
        definition = package_definition(request, entry, self.settings, self.sites)
        if definition.id != process_id:
            raise BadRequest(f"the package describes process '{definition.id}', not '{process_id}'")
        try:
            self.store.replace(definition, principal.sub)
        except NotDeployed:
            raise NoSuchProcess(f"process '{process_id}' does not exist") from None
        audit.info(
            "process %s replaced by %s (package sha256:%s)",
            process_id,
            principal.username,
            definition.digest,
        )
        return definition

    def undeploy(self, principal: Principal, process_id: str) -> None:
        self.may_deploy(principal)
        self._owned(principal, process_id)
        try:
            self.store.undeploy(process_id)
        except NotDeployed:
            raise NoSuchProcess(f"process '{process_id}' does not exist") from None
        audit.info("process %s undeployed by %s", process_id, principal.username)

    def package(self, process_id: str) -> PackagedDefinition:
        """The deployed package of ``process_id`` (built-in processes have none: 404)."""
        definition = self.store.current(process_id)
        if definition is None:
            if self.registry.is_builtin(process_id):
                raise NoSuchProcess(
                    f"process '{process_id}' is built in: it has no application package"
                )
            raise NoSuchProcess(f"process '{process_id}' does not exist")
        return definition
