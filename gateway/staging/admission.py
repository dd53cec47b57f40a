"""Cheap checks of a job's references and callbacks, made before the job is stored.

An :data:`~gateway.jobs.service.AdmissionHook`: for every input given by
reference it checks the scheme, resolves the host once and applies the
egress policy (``s3://`` URLs: bucket/key syntax and the endpoint's address;
``file://``: an existing file under an allowed root); for every subscriber
URL it does the same. Then, unless ``workflow.egress.probe_references`` is
off, http(s) references are probed over the network (:mod:`gateway.staging.probe`):
every redirect hop is checked, and for a STAC Item the selected asset's href
is checked (scheme, address) and probed too. A refusal is
:class:`~gateway.errors.InvalidInput` (400) naming the input, so nothing is
queued; a probe that fails or times out accepts the job. The full check runs
again when the input is fetched (the DNS answer or the redirects may have
changed since). A host name that does not resolve now is refused, unless
``workflow.egress.require_resolvable`` is off (then accepted, checked again
when fetched).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gateway.egress import EgressError, EgressPolicy, UnresolvableHost
from gateway.errors import InvalidInput
from gateway.settings_workflow import WorkflowSettings
from gateway.staging.base import StagingError
from gateway.staging.probe import ProbeLimits, ProbeSession, ReferenceProbe
from gateway.staging.reference import Reference, iter_references, local_path, parse_s3
from gateway.staging.stac import SelectedAsset, check_asset_scheme, find_asset

if TYPE_CHECKING:
    from gateway.identity.auth import Principal
    from gateway.jobs.execute_request import ExecuteRequest
    from processes.definition import ProcessDefinition

log = logging.getLogger(__name__)


class ReferenceAdmission:
    """Refuses, with 400, references and callback URLs the gateway must not fetch."""

    def __init__(
        self,
        policy: EgressPolicy,
        local_roots: list[str],
        s3_endpoint: str | None,
        require_resolvable: bool = True,
        probe: ReferenceProbe | None = None,
    ) -> None:
        self.policy = policy
        self.local_roots = local_roots
        self.s3_endpoint = s3_endpoint
        self.require_resolvable = require_resolvable
        self.probe = probe

    def _check_url(self, url: str) -> bool:
        """Egress check of ``url``; False when its host does not resolve now (accepted)."""
        try:
            self.policy.check_url(url)
        except UnresolvableHost:
            if self.require_resolvable:
                raise
            log.info("admission: %s does not resolve now; it is checked again when fetched", url)
            return False
        return True

    def _check_s3(self, url: str) -> None:
        """``s3://bucket/key`` syntax, and the S3 endpoint's address."""
        parse_s3(url)
        if self.s3_endpoint and urlsplit(self.s3_endpoint).hostname:
            self._check_url(self.s3_endpoint)

    def __call__(
        self, principal: Principal, process: ProcessDefinition, request: ExecuteRequest
    ) -> None:
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
                self._check_s3(ref.href)
            elif self._check_url(ref.href) and self.probe is not None:
                with self.probe.session() as session:
                    self._probe(session, ref)
        except (EgressError, StagingError) as exc:
            raise InvalidInput(f"input '{name}': {exc.detail}") from None

    def _probe(self, session: ProbeSession, ref: Reference) -> None:
        """Network checks of an http(s) reference: redirects, STAC asset (raise on refusal)."""
        if not ref.is_stac:
            session.follow(ref.href)
            return
        item = session.stac_item(ref.href)
        if item is None:
            return
        try:
            selected = find_asset(item, ref)
        except StagingError as exc:  # not a policy matter: reported when the job stages it
            log.info("admission probe of %s: %s (accepted)", ref.href, exc.detail)
            return
        if self._check_asset(selected):
            session.follow(selected.href)

    def _check_asset(self, selected: SelectedAsset) -> bool:
        """Scheme and egress checks of a STAC asset's href; True when it should be probed."""
        check_asset_scheme(selected)
        try:
            if urlsplit(selected.href).scheme.lower() == "s3":
                self._check_s3(selected.href)
                return False
            return self._check_url(selected.href)
        except (EgressError, StagingError) as exc:
            raise StagingError(
                f"asset '{selected.key}' of STAC Item '{selected.item_id}' "
                f"({selected.href}): {exc.detail}"
            ) from None


def reference_admission(settings: WorkflowSettings, policy: EgressPolicy) -> ReferenceAdmission:
    """The admission hook the workflow settings describe."""
    egress = settings.egress
    probe = None
    if egress.probe_references:
        probe = ReferenceProbe(policy, ProbeLimits.from_settings(settings))
    return ReferenceAdmission(
        policy,
        settings.staging.local_roots,
        settings.s3.endpoint_url,
        egress.require_resolvable,
        probe,
    )
