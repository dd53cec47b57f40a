"""A small Keycloak-compatible identity provider for development and tests.

DEVELOPMENT AND TESTS ONLY; never enabled by default. Serves one realm with
Keycloak's paths:

* ``GET  /realms/{realm}`` and ``/realms/{realm}/.well-known/openid-configuration``
* ``GET  /realms/{realm}/protocol/openid-connect/certs`` (JWKS, RS256)
* ``POST /realms/{realm}/protocol/openid-connect/token`` (``password``,
  ``client_credentials``, ``refresh_token``)
* ``GET  /realms/{realm}/protocol/openid-connect/userinfo``
* the admin REST endpoints python-keycloak's ``KeycloakAdmin`` calls for users,
  groups, group members and realm roles (``/admin/realms/{realm}/...``), guarded
  by ``realm-management`` client roles (``view-users``/``query-*`` to read,
  ``manage-users`` to write), like Keycloak.

Run ``python -m deploy.idp.server --help`` or ``deploy/idp/run.sh start``;
tests start :class:`IdpServer` in-process on a free port.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

try:  # run as ``python deploy/idp/server.py`` or as ``deploy.idp.server``
    from deploy.idp.realm import GrantError, Realm, SigningKey
except ImportError:  # pragma: no cover
    from realm import GrantError, Realm, SigningKey  # type: ignore[no-redef]

log = logging.getLogger("devidp")
HERE = Path(__file__).resolve().parent
READ = {"view-users", "query-users", "query-groups", "manage-users", "realm-admin"}
WRITE = {"manage-users", "realm-admin"}
MAX_BODY = 65_536


class HttpError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(str(body))
        self.status, self.body, self.headers = status, body, headers or {}


Route = tuple[str, re.Pattern[str], Callable[..., Any], set[str] | None]


class Handler(BaseHTTPRequestHandler):
    server_version = "devidp/1"
    realm: Realm  # set on the subclass made by IdpServer
    routes: list[Route]

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s " + fmt, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = re.sub(r"/{2,}", "/", unquote(parts.path))
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        try:
            body = self._body()
            for verb, pattern, fn, needs in self.routes:
                match = pattern.fullmatch(path)
                if verb == method and match:
                    if needs is not None:
                        self._authorize(needs)
                    result = fn(self, query=query, body=body, **match.groupdict())
                    self._send(*result) if isinstance(result, tuple) else self._send(200, result)
                    return
            raise HttpError(404, {"error": "Unable to find matching target resource method"})
        except HttpError as exc:
            self._send(exc.status, exc.body, exc.headers)
        except GrantError as exc:
            self._send(exc.status, {"error": exc.error, "error_description": exc.description})

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise HttpError(413, {"error": "request too large"})
        return self.rfile.read(length) if length else b""

    def _bearer(self) -> str:
        value = self.headers.get("Authorization", "")
        if not value.lower().startswith("bearer "):
            raise HttpError(401, {"error": "HTTP 401 Unauthorized"})
        return value[7:].strip()

    def _authorize(self, needs: set[str]) -> None:
        if not self.realm.admin_roles(self._bearer()) & needs:
            raise HttpError(403, {"error": "HTTP 403 Forbidden"})

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise HttpError(400, {"error": "invalid JSON"}) from None


def _page(items: list[Any], query: dict[str, str]) -> list[Any]:
    first = int(query.get("first") or 0)
    count = int(query.get("max") or 100)
    return items[first : first + count]


def _truthy(value: str | None) -> bool:
    return (value or "").lower() == "true"


# -- OIDC endpoints -------------------------------------------------------------


def realm_info(h: Handler, **_: Any) -> Any:
    r = h.realm
    pem = r.key.public_pem().decode()
    key = "".join(pem.strip().splitlines()[1:-1])
    return {
        "realm": r.name,
        "public_key": key,
        "token-service": f"{r.issuer}/protocol/openid-connect",
        "account-service": f"{r.issuer}/account",
        "tokens-not-before": 0,
    }


def discovery(h: Handler, **_: Any) -> Any:
    return h.realm.discovery()


def certs(h: Handler, **_: Any) -> Any:
    return h.realm.jwks()


def token(h: Handler, body: bytes, **_: Any) -> Any:
    form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    basic = None
    auth = h.headers.get("Authorization", "")
    if auth.lower().startswith("basic "):
        try:
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            raise HttpError(401, {"error": "invalid_client"}) from None
        basic = (unquote(client_id), unquote(secret))
    return h.realm.grant(form, basic)


def userinfo(h: Handler, **_: Any) -> Any:
    claims = h.realm.verify(h._bearer())
    keep = ("sub", "preferred_username", "email", "email_verified", "name", "groups")
    return {k: claims[k] for k in keep if k in claims}


# -- admin: users ----------------------------------------------------------------


def list_users(h: Handler, query: dict[str, str], **_: Any) -> Any:
    users = h.realm.portal_users()
    exact = _truthy(query.get("exact"))
    for key, attr in (
        ("username", "username"),
        ("email", "email"),
        ("firstName", "first_name"),
        ("lastName", "last_name"),
    ):
        if key in query:
            wanted = query[key].lower()
            users = [
                u
                for u in users
                if (getattr(u, attr) or "").lower() == wanted
                or (not exact and wanted in (getattr(u, attr) or "").lower())
            ]
    if query.get("search"):
        s = query["search"].strip("*").lower()
        users = [
            u
            for u in users
            if any(s in (v or "").lower() for v in (u.username, u.email, u.first_name, u.last_name))
        ]
    if "enabled" in query:
        users = [u for u in users if u.enabled == _truthy(query["enabled"])]
    if query.get("q"):
        for term in query["q"].split():
            key, _, value = term.partition(":")
            users = [u for u in users if value in u.attributes.get(key, [])]
    brief = _truthy(query.get("briefRepresentation"))
    return [h.realm.user_rep(u, brief) for u in _page(users, query)]


def count_users(h: Handler, **_: Any) -> Any:
    return len(h.realm.portal_users())


def _user(h: Handler, uid: str) -> Any:
    user = h.realm.users.get(uid)
    if user is None or user.service_account_of is not None:
        raise HttpError(404, {"error": "User not found"})
    return user


def create_user(h: Handler, body: bytes, **_: Any) -> Any:
    rep = _json(body)
    if not isinstance(rep, dict) or not rep.get("username"):
        raise HttpError(400, {"errorMessage": "username is required"})
    try:
        user = h.realm.create_user(rep)
    except ValueError as exc:
        raise HttpError(409, {"errorMessage": str(exc)}) from None
    location = f"{h.realm.base_url}/admin/realms/{h.realm.name}/users/{user.id}"
    return 201, None, {"Location": location}


def get_user(h: Handler, uid: str, **_: Any) -> Any:
    return h.realm.user_rep(_user(h, uid))


def update_user(h: Handler, uid: str, body: bytes, **_: Any) -> Any:
    rep = _json(body)
    with h.realm.lock:
        h.realm.update_user(_user(h, uid), rep if isinstance(rep, dict) else {})
    return 204, None


def delete_user(h: Handler, uid: str, **_: Any) -> Any:
    with h.realm.lock:
        h.realm.users.pop(_user(h, uid).id)
    return 204, None


def user_groups(h: Handler, uid: str, query: dict[str, str], **_: Any) -> Any:
    user = _user(h, uid)
    groups = sorted(
        (h.realm.groups[g] for g in user.group_ids if g in h.realm.groups), key=lambda g: g.path
    )
    return [h.realm.group_rep(g) for g in _page(groups, query)]


def user_group_put(h: Handler, uid: str, gid: str, **_: Any) -> Any:
    with h.realm.lock:
        if gid not in h.realm.groups:
            raise HttpError(404, {"error": "Group not found"})
        _user(h, uid).group_ids.add(gid)
    return 204, None


def user_group_delete(h: Handler, uid: str, gid: str, **_: Any) -> Any:
    with h.realm.lock:
        _user(h, uid).group_ids.discard(gid)
    return 204, None


def user_realm_roles(h: Handler, uid: str, **_: Any) -> Any:
    return [_role(name) for name in sorted(_user(h, uid).realm_roles)]


def user_realm_roles_add(h: Handler, uid: str, body: bytes, **_: Any) -> Any:
    names = {r.get("name") for r in _json(body) or [] if isinstance(r, dict)}
    with h.realm.lock:
        _user(h, uid).realm_roles |= {n for n in names if n in h.realm.roles}
    return 204, None


def user_realm_roles_delete(h: Handler, uid: str, body: bytes, **_: Any) -> Any:
    names = {r.get("name") for r in _json(body) or [] if isinstance(r, dict)}
    with h.realm.lock:
        _user(h, uid).realm_roles -= names
    return 204, None


# -- admin: groups and roles -----------------------------------------------------


def _role(name: str) -> dict[str, Any]:
    return {"id": name, "name": name, "composite": False, "clientRole": False}


def list_groups(h: Handler, query: dict[str, str], **_: Any) -> Any:
    groups = sorted(h.realm.groups.values(), key=lambda g: g.path)
    if query.get("search"):
        groups = [g for g in groups if query["search"].lower() in g.name.lower()]
    return [h.realm.group_rep(g) for g in _page(groups, query)]


def create_group(h: Handler, body: bytes, **_: Any) -> Any:
    rep = _json(body)
    name = rep.get("name") if isinstance(rep, dict) else None
    if not name:
        raise HttpError(400, {"errorMessage": "name is required"})
    with h.realm.lock:
        if h.realm.group_by_path(name) is not None:
            raise HttpError(
                409, {"errorMessage": f"Top level group named '{name}' already exists."}
            )
        group = h.realm.add_group(name)
    return (
        201,
        None,
        {"Location": f"{h.realm.base_url}/admin/realms/{h.realm.name}/groups/{group.id}"},
    )


def _group(h: Handler, gid: str) -> Any:
    group = h.realm.groups.get(gid)
    if group is None:
        raise HttpError(404, {"error": "Could not find group by id"})
    return group


def get_group(h: Handler, gid: str, **_: Any) -> Any:
    return h.realm.group_rep(_group(h, gid))


def group_children(h: Handler, gid: str, **_: Any) -> Any:
    _group(h, gid)
    return []


def group_by_path(h: Handler, path: str, **_: Any) -> Any:
    group = h.realm.group_by_path(path)
    if group is None:
        raise HttpError(404, {"error": "Group path does not exist"})
    return h.realm.group_rep(group)


def group_members(h: Handler, gid: str, query: dict[str, str], **_: Any) -> Any:
    _group(h, gid)
    members = [u for u in h.realm.portal_users() if gid in u.group_ids]
    brief = _truthy(query.get("briefRepresentation"))
    return [h.realm.user_rep(u, brief) for u in _page(members, query)]


def list_roles(h: Handler, **_: Any) -> Any:
    return [_role(n) for n in sorted(h.realm.roles)]


def get_role(h: Handler, role: str, **_: Any) -> Any:
    if role not in h.realm.roles:
        raise HttpError(404, {"error": "Could not find role"})
    return _role(role)


def role_users(h: Handler, role: str, query: dict[str, str], **_: Any) -> Any:
    get_role(h, role)
    users = [u for u in h.realm.portal_users() if role in u.realm_roles]
    return [h.realm.user_rep(u, True) for u in _page(users, query)]


def _routes(realm: str) -> list[Route]:
    r = re.escape(realm)
    oidc = f"/realms/{r}/protocol/openid-connect"
    adm = f"/admin/realms/{r}"
    uid, gid = r"(?P<uid>[^/]+)", r"(?P<gid>[^/]+)"
    table: list[tuple[str, str, Callable[..., Any], set[str] | None]] = [
        ("GET", f"/realms/{r}", realm_info, None),
        ("GET", f"/realms/{r}/\\.well-known/openid-configuration", discovery, None),
        ("GET", f"{oidc}/certs", certs, None),
        ("POST", f"{oidc}/token", token, None),
        ("GET", f"{oidc}/userinfo", userinfo, None),
        ("GET", f"{adm}/users", list_users, READ),
        ("POST", f"{adm}/users", create_user, WRITE),
        ("GET", f"{adm}/users/count", count_users, READ),
        ("GET", f"{adm}/users/{uid}", get_user, READ),
        ("PUT", f"{adm}/users/{uid}", update_user, WRITE),
        ("DELETE", f"{adm}/users/{uid}", delete_user, WRITE),
        ("GET", f"{adm}/users/{uid}/groups", user_groups, READ),
        ("PUT", f"{adm}/users/{uid}/groups/{gid}", user_group_put, WRITE),
        ("DELETE", f"{adm}/users/{uid}/groups/{gid}", user_group_delete, WRITE),
        ("GET", f"{adm}/users/{uid}/role-mappings/realm", user_realm_roles, READ),
        ("POST", f"{adm}/users/{uid}/role-mappings/realm", user_realm_roles_add, WRITE),
        ("DELETE", f"{adm}/users/{uid}/role-mappings/realm", user_realm_roles_delete, WRITE),
        ("GET", f"{adm}/groups", list_groups, READ),
        ("POST", f"{adm}/groups", create_group, WRITE),
        ("GET", f"{adm}/groups/{gid}", get_group, READ),
        ("GET", f"{adm}/groups/{gid}/children", group_children, READ),
        ("GET", f"{adm}/groups/{gid}/members", group_members, READ),
        ("GET", f"{adm}/group-by-path/(?P<path>.+)", group_by_path, READ),
        ("GET", f"{adm}/roles", list_roles, READ),
        ("GET", f"{adm}/roles/(?P<role>[^/]+)", get_role, READ),
        ("GET", f"{adm}/roles/(?P<role>[^/]+)/users", role_users, READ),
    ]
    return [(m, re.compile(p), fn, needs) for m, p, fn, needs in table]


class IdpServer:
    """The stand-in on ``host:port`` (0 = a free port), served from a daemon thread."""

    def __init__(self, realm: Realm, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = type("RealmHandler", (Handler,), {"realm": realm, "routes": _routes(realm.name)})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.realm = realm
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://{host}:{self.port}"
        realm.base_url = self.url
        self._thread: threading.Thread | None = None

    @property
    def issuer(self) -> str:
        return self.realm.issuer

    def start(self) -> IdpServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="devidp")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def load_realm(realm_file: Path, state_dir: Path | None) -> Realm:
    """The realm of ``realm_file``, its signing key kept in ``state_dir`` (or ephemeral)."""
    key = (
        SigningKey.load_or_create(state_dir / "signing-key.pem")
        if state_dir
        else SigningKey.generate()
    )
    return Realm.from_file(realm_file, key, state_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Keycloak-compatible dev identity provider")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8180)
    parser.add_argument("--realm-file", type=Path, default=HERE / "realm-gep.json")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path("var/idp"),
        help="signing key, generated client secrets, jwks.json",
    )
    parser.add_argument(
        "--sun-prefix",
        default=None,
        help="prefix of the Slurm user-name claim `sun`; match the gateway's identity rule "
        "(e.g. gep_ for gep_{preferred_username})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s devidp %(message)s")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the development identity provider only listens on loopback")
    realm = load_realm(args.realm_file, args.state_dir)
    if args.sun_prefix is not None:
        realm.sun_prefix = args.sun_prefix
    server = IdpServer(realm, args.host, args.port)
    jwks_file = args.state_dir / "jwks.json"
    jwks_file.write_text(json.dumps(realm.jwks()), encoding="utf-8")
    jwks_file.chmod(0o644)
    log.info("realm %s at %s (JWKS copy: %s)", realm.name, realm.issuer, jwks_file)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()


if __name__ == "__main__":
    main()
