"""Cheap checks of a job's references and callbacks, made before the job is stored.

An :data:`~gateway.service.AdmissionHook`: for every input given by
reference it checks the scheme, resolves the host once and applies the
egress policy (``s3://`` URLs: bucket/key syntax and the endpoint's address;
``file://``: an existing file under an allowed root); for every subscriber
URL it does the same. A refusal is :class:`~gateway.errors.InvalidInput`
(400) naming the input, so nothing is queued. The full check runs again when
the input is fetched (the DNS answer may have changed since: rebinding), and
STAC assets and redirect targets -- known only when fetching -- are checked
then. A host name that does not resolve now is accepted (checked again when
fetched) unless ``workflow.egress.require_resolvable`` is set.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gateway.egress import EgressError, EgressPolicy, UnresolvableHost
from gateway.errors import InvalidInput
from gateway.settings_workflow import WorkflowSettings
from gateway.staging.base import StagingError
from gateway.staging.reference import Reference, iter_references, local_path, parse_s3

if TYPE_CHECKING:
    from gateway.auth import Principal
    from gateway.execute_request import ExecuteRequest
    from processes.definition import ProcessDefinition

log = logging.getLogger(__name__)


class ReferenceAdmission:
    """Refuses, with 400, references and callback URLs the gateway must not fetch."""

    def __init__(
        self,
        policy: EgressPolicy,
        local_roots: list[str],
        s3_endpoint: str | None,
        require_resolvable: bool = False,
    ) -> None:
        self.policy = policy
        self.local_roots = local_roots
        self.s3_endpoint = s3_endpoint
        self.require_resolvable = require_resolvable

    def _check_url(self, url: str) -> None:
        try:
            self.policy.check_url(url)
        except UnresolvableHost:
            if self.require_resolvable:
                raise
            log.info("admission: %s does not resolve now; it is checked again when fetched", url)

    def __call__(
        self, principal: Principal, process: ProcessDefinition, request: ExecuteRequest
    ) -> dict[str, Any] | None:
        for name, value in iter_references(request.inputs):
            self.check_reference(name, value)
        for key, uri in (request.subscriber or {}).items():
            try:
                self._check_url(uri)
            except EgressError as exc:
                raise InvalidInput(f"subscriber '{key}': {exc.detail}") from None
        return None

    def check_reference(self, name: str, value: dict[str, Any]) -> None:
        """Raise InvalidInput when input ``name`` names a source that will not be fetched."""
        ref = Reference.parse(value)
        try:
            if ref.scheme == "file":
                if ref.is_stac:
                    raise StagingError("a STAC Item must be given by an http(s) or s3 URL")
                local_path(ref.href, self.local_roots)
            elif ref.scheme == "s3":
                parse_s3(ref.href)
                if self.s3_endpoint and urlsplit(self.s3_endpoint).hostname:
                    self._check_url(self.s3_endpoint)
            else:
                self._check_url(ref.href)
        except (EgressError, StagingError) as exc:
            raise InvalidInput(f"input '{name}': {exc.detail}") from None


def reference_admission(settings: WorkflowSettings, policy: EgressPolicy) -> ReferenceAdmission:
    """The admission hook the workflow settings describe."""
    return ReferenceAdmission(
        policy,
        settings.staging.local_roots,
        settings.s3.endpoint_url,
        settings.egress.require_resolvable,
    )
