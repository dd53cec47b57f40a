"""``hpcgw triggers ...``: the operators' view of every owner's triggers, on the database.

Users manage their own triggers through ``/triggers``; this CLI is for the
HPC centre: list, show, create for a provisioned user (``--owner`` is the
user's identity-provider ``sub``, as in ``hpcgw users``), enable/disable,
delete, activate by hand (area + time, as geObservatory's manual activation)
and poll the due feeds once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from gateway.services import Services
    from gateway.triggers.service import TriggerService

triggers_app = typer.Typer(help="Triggers: rules that start jobs on events.", no_args_is_help=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML configuration file (else $HPCGW_CONFIG)."),
]


def _services(config: Path | None) -> Services:
    from gateway.app import build_services
    from gateway.settings import ConfigError, load_settings

    try:
        return build_services(load_settings(config))
    except (ConfigError, ValueError) as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None


def _triggers(services: Services) -> TriggerService:
    assert services.triggers is not None
    return services.triggers


def _operator() -> Any:
    from gateway.identity.auth import ROLE_ADMIN, Principal

    return Principal(
        sub="hpcgw-cli", username="hpcgw-cli", hpc_login=None,
        roles=frozenset({ROLE_ADMIN}), is_admin=True,
    )  # fmt: skip


def _run(config: Path | None, action: Any) -> None:
    """Run ``action(services)``; a refusal (bad rule, unknown id) is exit status 2."""
    from gateway.errors import GatewayError

    services = _services(config)
    try:
        action(services)
    except GatewayError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    finally:
        services.close()


def _show(services: Services, trigger_id: str) -> None:
    from gateway.triggers.records import Trigger

    service = _triggers(services)
    trigger: Trigger = service.get(_operator(), trigger_id)
    doc = {
        "id": trigger.id,
        "owner": trigger.owner.username,
        **trigger.rule.wire(),
        "lastPolled": trigger.feed.last_polled.isoformat() if trigger.feed.last_polled else None,
        "lastError": trigger.feed.last_error,
        "activations": [a.wire() for a in service.activations(trigger)],
    }
    typer.echo(json.dumps(doc, indent=2))


@triggers_app.command("list")
def list_cmd(config: ConfigOpt = None) -> None:
    """Every trigger: id, owner, enabled, source, title, last problem."""

    def act(services: Services) -> None:
        for t in _triggers(services).listing(_operator()):
            state = "enabled" if t.enabled else "disabled"
            problem = f"  [{t.feed.last_error}]" if t.feed.last_error else ""
            source = t.rule.source.type
            typer.echo(f"{t.id}  {t.owner.username}  {state}  {source}  {t.rule.title}{problem}")

    _run(config, act)


@triggers_app.command("show")
def show_cmd(trigger_id: str, config: ConfigOpt = None) -> None:
    """One trigger as JSON, with its activations and their jobs."""
    _run(config, lambda services: _show(services, trigger_id))


@triggers_app.command("create")
def create_cmd(
    rule_file: Annotated[Path, typer.Argument(help="The rule, as JSON (see docs/triggers.md).")],
    owner: Annotated[str, typer.Option("--owner", help="The owner's identity-provider sub.")],
    config: ConfigOpt = None,
) -> None:
    """Create a trigger for a provisioned user (their jobs, their HPC login)."""
    from gateway.errors import BadRequest
    from gateway.identity.auth import ROLE_USER, Principal
    from gateway.identity.identity_map import IdentityStore

    def act(services: Services) -> None:
        identity = IdentityStore(services.engine).get(owner)
        if identity is None or not identity.active:
            raise BadRequest(f"'{owner}' is not a provisioned, active user (see hpcgw users)")
        try:
            body = json.loads(rule_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadRequest(f"cannot read {rule_file}: {exc}") from None
        principal = Principal(
            sub=identity.sub, username=identity.username, hpc_login=identity.hpc_login,
            roles=frozenset({ROLE_USER}),
        )  # fmt: skip
        typer.echo(_triggers(services).create(principal, body).id)

    _run(config, act)


def _set_enabled(config: Path | None, trigger_id: str, enabled: bool) -> None:
    _run(config, lambda s: _triggers(s).set_enabled(_operator(), trigger_id, enabled))


@triggers_app.command("enable")
def enable_cmd(trigger_id: str, config: ConfigOpt = None) -> None:
    """Enable a trigger (its feed is polled again)."""
    _set_enabled(config, trigger_id, True)


@triggers_app.command("disable")
def disable_cmd(trigger_id: str, config: ConfigOpt = None) -> None:
    """Disable a trigger (no polling; manual activations still work)."""
    _set_enabled(config, trigger_id, False)


@triggers_app.command("delete")
def delete_cmd(trigger_id: str, config: ConfigOpt = None) -> None:
    """Delete a trigger and its activation records (the jobs stay)."""
    _run(config, lambda s: _triggers(s).delete(_operator(), trigger_id))


@triggers_app.command("activate")
def activate_cmd(
    trigger_id: str,
    time: Annotated[str, typer.Option("--time", help="RFC 3339 time with zone.")],
    lon: Annotated[float | None, typer.Option(help="Longitude of the point.")] = None,
    lat: Annotated[float | None, typer.Option(help="Latitude of the point.")] = None,
    bbox: Annotated[str | None, typer.Option(help="minlon,minlat,maxlon,maxlat")] = None,
    event_id: Annotated[str | None, typer.Option("--event-id", help="Names the event.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Activate a trigger by hand with an area and a time; prints the activation."""
    from gateway.errors import BadRequest

    body: dict[str, Any] = {"time": time, "lon": lon, "lat": lat, "eventId": event_id}
    if bbox is not None:
        try:
            body["bbox"] = [float(v) for v in bbox.split(",")]
        except ValueError:
            typer.echo("error: --bbox takes four numbers separated by commas", err=True)
            raise typer.Exit(2) from None

    def act(services: Services) -> None:
        activation, _new = _triggers(services).activate(
            _operator(), trigger_id, {k: v for k, v in body.items() if v is not None}
        )
        if activation.outcome == "refused":
            raise BadRequest(f"activation refused: {activation.reason}")
        typer.echo(json.dumps(activation.wire(), indent=2))

    _run(config, act)


@triggers_app.command("poll")
def poll_cmd(config: ConfigOpt = None) -> None:
    """Poll the due feeds once now (as a worker would); prints how many events fired."""
    from gateway.app import build_trigger_poller

    _run(config, lambda s: typer.echo(build_trigger_poller(s, "hpcgw-cli").run_once()))
