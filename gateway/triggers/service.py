"""The trigger service: manage rules (owner-isolated) and fire them, once per event.

What holds whatever the surface (REST, CLI, the worker's poller):

* a rule is validated in full when it is stored -- its process exists and
  its input template, filled from a sample event, is a valid execute request
  for that process (else 400), not when the first event comes;
* a user sees and changes only their own triggers (another user's id is "not
  found"); ``hpc-admin`` sees all;
* a trigger fires **as its owner**: the job is an ordinary job of theirs
  (their HPC login, routing, quote and budget), submitted through
  :meth:`gateway.jobs.service.JobService.submit`; an owner whose HPC account
  was disabled, or a login of ``root``, is refused;
* **once per event**: :meth:`TriggerService.fire` first claims the event
  (:meth:`TriggerStore.claim_event`, a unique row), then submits the job with
  an id derived from the trigger and the event (UUID 5). A crash between the
  two leaves a ``pending`` activation that :meth:`TriggerService.recover` submits
  later with the same id; a job that already exists is simply linked. So no
  event ever makes two jobs, and none is lost.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from gateway.errors import BadRequest, Forbidden, GatewayError, NotFound
from gateway.identity.auth import ROLE_USER, Principal
from gateway.identity.identity_map import IdentityStore
from gateway.jobs.execute_request import SITE_MEMBER, parse_execute_request
from gateway.jobs.service import JobService
from gateway.jobs.store import JobNotFound, utcnow
from gateway.triggers.events import Event
from gateway.triggers.geometry import around
from gateway.triggers.records import Activation, ManualActivation, Trigger, TriggerRule
from gateway.triggers.store import REFUSED, SUBMITTED, TriggerNotFound, TriggerStore
from gateway.triggers.template import SAMPLE, TemplateError, render

log = logging.getLogger(__name__)
audit = logging.getLogger("gateway.audit")

#: Job ids of activations: UUID 5 of "<trigger id>/<event id>" in this namespace.
_JOB_NAMESPACE = uuid.UUID("6f1c7d2e-5b7a-4c1e-9a43-2a3f0c9e7d11")
#: A pending activation older than this is taken to be one whose worker died.
PENDING_GRACE = timedelta(minutes=2)


def activation_job_id(trigger_id: str, event_id: str) -> str:
    """The id of the job ``trigger_id`` makes for ``event_id`` (the same every time)."""
    return str(uuid.uuid5(_JOB_NAMESPACE, f"{trigger_id}/{event_id}"))


def validation_message(exc: ValidationError) -> str:
    """Pydantic's errors as one line a user can act on."""
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "invalid trigger: " + "; ".join(parts)


class TriggerService:
    """Create, read, change, delete, activate and fire triggers."""

    def __init__(
        self, store: TriggerStore, jobs: JobService, identities: IdentityStore | None = None
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.identities = identities

    # -- rules ----------------------------------------------------------------

    def parse_rule(self, body: Any) -> TriggerRule:
        """The rule in ``body``, validated in full (400 with the reason otherwise)."""
        if not isinstance(body, dict):
            raise BadRequest("a trigger is a JSON object")
        try:
            rule = TriggerRule.model_validate(body)
        except ValidationError as exc:
            raise BadRequest(validation_message(exc)) from None
        try:
            process = self.jobs.registry.get(rule.process)
        except LookupError:
            raise BadRequest(f"process '{rule.process}' does not exist") from None
        try:
            inputs = render(rule.inputs, SAMPLE)
        except TemplateError as exc:
            raise BadRequest(f"input template: {exc}") from None
        request: dict[str, Any] = {"inputs": inputs}
        if rule.site is not None:
            if rule.site not in set(self.jobs.sites.names()):
                raise BadRequest(f"site '{rule.site}' is not one of this gateway's HPC sites")
            request[SITE_MEMBER] = rule.site
        try:
            parse_execute_request(process, request)
        except BadRequest as exc:
            raise BadRequest(f"input template does not fit '{process.id}': {exc.detail}") from None
        return rule

    def create(self, principal: Principal, body: Any) -> Trigger:
        if not principal.hpc_login:
            raise Forbidden(
                f"user '{principal.username}' has no HPC account: a trigger runs jobs as its owner"
            )
        rule = self.parse_rule(body)
        trigger = self.store.create(str(uuid.uuid4()), principal.owner(), rule)
        audit.info("trigger %s created by %s: %s", trigger.id, principal.username, rule.title)
        return trigger

    def get(self, principal: Principal, trigger_id: str) -> Trigger:
        try:
            return self.store.get(trigger_id, owner_sub=principal.visibility)
        except TriggerNotFound:
            raise NotFound(f"trigger '{trigger_id}' does not exist") from None

    def listing(self, principal: Principal) -> list[Trigger]:
        return self.store.listing(owner_sub=principal.visibility)

    def replace(self, principal: Principal, trigger_id: str, body: Any) -> Trigger:
        self.get(principal, trigger_id)
        rule = self.parse_rule(body)
        return self.store.replace(trigger_id, rule, owner_sub=principal.visibility)

    def set_enabled(self, principal: Principal, trigger_id: str, enabled: bool) -> Trigger:
        trigger = self.get(principal, trigger_id)
        rule = trigger.rule.model_copy(update={"enabled": enabled})
        return self.store.replace(trigger_id, rule, owner_sub=principal.visibility)

    def delete(self, principal: Principal, trigger_id: str) -> None:
        try:
            self.store.delete(trigger_id, owner_sub=principal.visibility)
        except TriggerNotFound:
            raise NotFound(f"trigger '{trigger_id}' does not exist") from None
        audit.info("trigger %s deleted by %s", trigger_id, principal.username)

    def activations(self, trigger: Trigger, limit: int = 100) -> list[Activation]:
        return self.store.activations(trigger.id, limit)

    # -- firing ---------------------------------------------------------------

    def activate(self, principal: Principal, trigger_id: str, body: Any) -> tuple[Activation, bool]:
        """A manual activation (area and time); (the activation, whether it is new).

        Activating again with the same ``eventId`` returns the first activation.
        """
        trigger = self.get(principal, trigger_id)
        try:
            manual = ManualActivation.model_validate(body)
        except ValidationError as exc:
            raise BadRequest(validation_message(exc).replace("trigger", "activation", 1)) from None
        event = manual_event(manual, trigger.rule.area_half_width_degrees)
        fired = self.fire(trigger, event, "manual")
        if fired is not None:
            return fired, True
        existing = self.store.activation(trigger.id, event.id)
        assert existing is not None  # claimed before, and activations are never deleted alone
        return existing, False

    def fire(self, trigger: Trigger, event: Event, kind: str) -> Activation | None:
        """Submit the trigger's job for ``event``, once; None when it already fired on it.

        A refusal (budget, quota, template, owner) is recorded on the activation
        with its reason and is final for this event.
        """
        job_id = activation_job_id(trigger.id, event.id)
        claimed = self.store.claim_event(trigger.id, event.id, kind, event.record(), job_id)
        if claimed is None:
            return None
        return self._submit(trigger, claimed, event)

    def _submit(self, trigger: Trigger, activation: Activation, event: Event) -> Activation:
        origin = {"id": trigger.id, "eventId": event.id, "kind": activation.kind}
        try:
            principal = self._owner(trigger)
            body: dict[str, Any] = {"inputs": render(trigger.rule.inputs, event)}
            if trigger.rule.site is not None:
                body[SITE_MEMBER] = trigger.rule.site
            self.jobs.submit(
                principal, trigger.rule.process, body, job_id=activation.job_id, origin=origin
            )
        except (GatewayError, TemplateError) as exc:
            reason = exc.detail if isinstance(exc, GatewayError) else str(exc)
            self.store.settle(activation.id, REFUSED, reason)
            audit.info("trigger %s: event %s refused: %s", trigger.id, event.id, reason)
            return _settled(activation, REFUSED, reason)
        self.store.settle(activation.id, SUBMITTED)
        audit.info(
            "trigger %s of %s: event %s -> job %s",
            trigger.id,
            trigger.owner.username,
            event.id,
            activation.job_id,
        )
        return _settled(activation, SUBMITTED, None)

    def _owner(self, trigger: Trigger) -> Principal:
        """The owner as the job's submitter, refused when their HPC account is gone."""
        owner = trigger.owner
        login = owner.hpc_login
        if self.identities is not None:
            record = self.identities.get(owner.sub)
            if record is not None and not record.active:
                raise Forbidden(f"the owner '{owner.username}' has no active HPC account any more")
            if record is not None:
                login = record.hpc_login
        if login == "root":
            raise Forbidden("a trigger never runs jobs as root")
        return Principal(
            sub=owner.sub, username=owner.username, hpc_login=login, roles=frozenset({ROLE_USER})
        )

    def recover(self) -> int:
        """Submit the activations a dead worker claimed but did not record; how many."""
        settled = 0
        for activation in self.store.pending(utcnow() - PENDING_GRACE):
            try:
                trigger = self.store.get(activation.trigger_id)
            except TriggerNotFound:
                self.store.settle(activation.id, REFUSED, "the trigger was deleted")
                continue
            try:
                self.jobs.store.get(activation.job_id)
            except JobNotFound:
                self._submit(trigger, activation, event_from_record(activation.event))
            else:  # the job was created; only its record was lost
                self.store.settle(activation.id, SUBMITTED)
            settled += 1
        return settled


def _settled(activation: Activation, outcome: str, reason: str | None) -> Activation:
    from dataclasses import replace

    return replace(activation, outcome=outcome, reason=reason, updated=utcnow())


def manual_event(manual: ManualActivation, half_width: float) -> Event:
    """The event of a manual activation: its box (or one around its point) and time."""
    if manual.bbox is not None:
        minx, miny, maxx, maxy = manual.bbox
        lon, lat = (minx + maxx) / 2, (miny + maxy) / 2
        bbox = (minx, miny, maxx, maxy)
    else:
        assert manual.lon is not None and manual.lat is not None
        lon, lat = manual.lon, manual.lat
        bbox = around(lon, lat, half_width)
    when = manual.time
    event_id = manual.event_id or f"manual:{when.isoformat()}:{','.join(f'{v:g}' for v in bbox)}"
    return Event(
        id=event_id,
        time=when,
        bbox=bbox,
        lon=lon,
        lat=lat,
        depth_km=manual.depth_km,
        magnitude=manual.magnitude,
    )


def event_from_record(record: dict[str, Any]) -> Event:
    """The :class:`Event` an activation stored (see :meth:`Event.record`)."""
    from datetime import datetime

    fields = dict(record)
    fields["time"] = datetime.fromisoformat(fields["time"])
    fields["bbox"] = tuple(fields["bbox"])
    return Event(**fields)
