"""The realm model of the development identity provider: users, groups, clients, keys, tokens.

DEVELOPMENT AND TESTS ONLY -- this is not an identity provider to run in
production, and nothing in the gateway package imports it. It imitates the
parts of a Keycloak realm the gateway uses, with Keycloak's token shapes
(``realm_access``, ``resource_access``, ``groups``, ``preferred_username``)
plus the ``sun`` claim Slurm's auth/jwt reads (a Keycloak user-attribute
protocol mapper provides it on a real realm).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

REALM_MANAGEMENT = "realm-management"


class GrantError(Exception):
    """A token request that must be refused (OAuth2 error code + HTTP status)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


@dataclass
class User:
    id: str
    username: str
    enabled: bool = True
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    password: str | None = None
    realm_roles: set[str] = field(default_factory=set)
    client_roles: dict[str, set[str]] = field(default_factory=dict)
    group_ids: set[str] = field(default_factory=set)
    attributes: dict[str, list[str]] = field(default_factory=dict)
    created_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    service_account_of: str | None = None


@dataclass
class Group:
    id: str
    name: str

    @property
    def path(self) -> str:
        return "/" + self.name


@dataclass
class Client:
    client_id: str
    public: bool = True
    secret: str | None = None
    direct_access_grants: bool = True
    service_accounts: bool = False
    #: Extra ``aud`` values (what Keycloak's Audience protocol mapper adds).
    audience: list[str] = field(default_factory=list)


def _b64(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class SigningKey:
    """An RS256 key pair with an RFC 7638 thumbprint as ``kid``."""

    def __init__(self, private: rsa.RSAPrivateKey) -> None:
        self.private = private
        numbers = private.public_key().public_numbers()
        self.n, self.e = _b64(numbers.n), _b64(numbers.e)
        canonical = json.dumps({"e": self.e, "kty": "RSA", "n": self.n}, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).digest()
        self.kid = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        if path.exists():
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise ValueError(f"{path} is not an RSA private key")
            return cls(loaded)
        key = cls.generate()
        pem = key.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_bytes(pem)
        return key

    def jwk(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "n": self.n,
            "e": self.e,
        }

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class Realm:
    """One realm: its users, groups, roles, clients and signing key. Thread-safe."""

    def __init__(self, name: str, key: SigningKey, token_lifespan: int = 300) -> None:
        self.name = name
        self.key = key
        self.token_lifespan = token_lifespan
        self.base_url = "http://127.0.0.1:8180"
        self.users: dict[str, User] = {}
        self.groups: dict[str, Group] = {}
        self.clients: dict[str, Client] = {}
        self.roles: set[str] = set()
        #: ``sun`` = this prefix + user name, unless the user has an ``hpc_login`` attribute.
        self.sun_prefix = ""
        self.lock = threading.RLock()

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/realms/{self.name}"

    def stable_id(self, kind: str, name: str) -> str:
        """Ids that survive a restart (so ``sub`` stays the same for the same user name)."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"devidp:{self.name}:{kind}:{name}"))

    # -- loading ------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: Path, key: SigningKey, state_dir: Path | None = None) -> Realm:
        """Load a realm from a (simplified) Keycloak realm export."""
        doc = json.loads(path.read_text(encoding="utf-8"))
        realm = cls(doc["realm"], key, int(doc.get("accessTokenLifespan", 300)))
        realm.roles = {r["name"] for r in doc.get("roles", {}).get("realm", [])}
        realm.sun_prefix = str(doc.get("sunPrefix", ""))
        for g in doc.get("groups", []):
            realm.add_group(g["name"])
        for c in doc.get("clients", []):
            client = Client(
                client_id=c["clientId"],
                public=bool(c.get("publicClient", True)),
                secret=c.get("secret"),
                direct_access_grants=bool(c.get("directAccessGrantsEnabled", True)),
                service_accounts=bool(c.get("serviceAccountsEnabled", False)),
                audience=list(c.get("audience", [])),
            )
            if not client.public and not client.secret:
                client.secret = _client_secret(client.client_id, state_dir)
            realm.clients[client.client_id] = client
            if client.service_accounts:
                sa = User(
                    id=realm.stable_id("client", client.client_id),
                    username=f"service-account-{client.client_id}",
                    service_account_of=client.client_id,
                    client_roles={
                        k: set(v) for k, v in c.get("serviceAccountClientRoles", {}).items()
                    },
                )
                realm.users[sa.id] = sa
        for u in doc.get("users", []):
            # Users of the realm file keep their id (``sub``) across restarts.
            realm.create_user({"id": realm.stable_id("user", str(u["username"]).lower()), **u})
        return realm

    # -- users and groups ------------------------------------------------------------

    def add_group(self, name: str) -> Group:
        with self.lock:
            group = Group(id=self.stable_id("group", name.strip("/")), name=name.strip("/"))
            self.groups[group.id] = group
            return group

    def group_by_path(self, path: str) -> Group | None:
        wanted = "/" + path.strip("/")
        return next((g for g in self.groups.values() if g.path == wanted), None)

    def user_by_name(self, username: str) -> User | None:
        name = username.lower()
        return next((u for u in self.users.values() if u.username == name), None)

    def create_user(self, rep: dict[str, Any]) -> User:
        """Create a user from a Keycloak UserRepresentation (409-style ValueError if taken)."""
        with self.lock:
            username = str(rep["username"]).lower()
            if self.user_by_name(username) is not None:
                raise ValueError(f"User exists with same username: {username}")
            user = User(id=str(rep.get("id") or uuid.uuid4()), username=username)
            self.update_user(user, rep)
            for cred in rep.get("credentials", []):
                if cred.get("type") == "password":
                    user.password = str(cred["value"])
            user.realm_roles = {r for r in rep.get("realmRoles", []) if r in self.roles}
            for path in rep.get("groups", []):
                group = self.group_by_path(path)
                if group is not None:
                    user.group_ids.add(group.id)
            self.users[user.id] = user
            return user

    @staticmethod
    def update_user(user: User, rep: dict[str, Any]) -> None:
        if "enabled" in rep:
            user.enabled = bool(rep["enabled"])
        for key, attr in (
            ("email", "email"),
            ("firstName", "first_name"),
            ("lastName", "last_name"),
        ):
            if key in rep:
                setattr(user, attr, rep[key])
        if "attributes" in rep and isinstance(rep["attributes"], dict):
            user.attributes = {
                k: [str(x) for x in (v if isinstance(v, list) else [v])]
                for k, v in rep["attributes"].items()
            }

    def user_rep(self, user: User, brief: bool = False) -> dict[str, Any]:
        rep: dict[str, Any] = {
            "id": user.id,
            "createdTimestamp": user.created_ms,
            "username": user.username,
            "enabled": user.enabled,
            "totp": False,
            "emailVerified": bool(user.email),
            "firstName": user.first_name,
            "lastName": user.last_name,
            "email": user.email,
            "disableableCredentialTypes": [],
            "requiredActions": [],
            "notBefore": 0,
        }
        if not brief:
            rep["attributes"] = {k: list(v) for k, v in user.attributes.items()}
            rep["access"] = {
                "manageGroupMembership": True,
                "view": True,
                "mapRoles": True,
                "impersonate": False,
                "manage": True,
            }
        return {k: v for k, v in rep.items() if v is not None}

    @staticmethod
    def group_rep(group: Group) -> dict[str, Any]:
        return {
            "id": group.id,
            "name": group.name,
            "path": group.path,
            "subGroupCount": 0,
            "subGroups": [],
            "attributes": {},
            "realmRoles": [],
            "clientRoles": {},
        }

    def portal_users(self) -> list[User]:
        """Real users (service-account users excluded), by username."""
        return sorted(
            (u for u in self.users.values() if u.service_account_of is None),
            key=lambda u: u.username,
        )

    # -- tokens ---------------------------------------------------------------------

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        hdr = {"kid": self.key.kid, "typ": "JWT", **(headers or {})}
        return jwt.encode(claims, self.key.private, algorithm="RS256", headers=hdr)

    def client(self, client_id: str, secret: str | None) -> Client:
        client = self.clients.get(client_id)
        if client is None:
            raise GrantError("invalid_client", "Invalid client or Invalid client credentials", 401)
        if not client.public and (
            secret is None
            or client.secret is None
            or not secrets.compare_digest(secret, client.secret)
        ):
            raise GrantError(
                "unauthorized_client", "Invalid client or Invalid client credentials", 401
            )
        return client

    def access_claims(self, user: User, client: Client, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        groups = sorted(self.groups[g].path for g in user.group_ids if g in self.groups)
        resource_access = {c: {"roles": sorted(r)} for c, r in user.client_roles.items() if r}
        aud = list(dict.fromkeys([*client.audience, *resource_access]))
        claims: dict[str, Any] = {
            "exp": now + self.token_lifespan,
            "iat": now,
            "jti": str(uuid.uuid4()),
            "iss": self.issuer,
            "aud": aud[0] if len(aud) == 1 else aud,
            "sub": user.id,
            "typ": "Bearer",
            "azp": client.client_id,
            "sid": str(uuid.uuid4()),
            "scope": "openid profile email",
            "realm_access": {"roles": sorted(user.realm_roles)},
            "resource_access": resource_access,
            "preferred_username": user.username,
            "groups": groups,
            # Slurm 22.05 auth/jwt reads the user name from `sun` (on Keycloak: a
            # user-attribute protocol mapper). Attribute `hpc_login`, else prefix+username.
            "sun": (user.attributes.get("hpc_login") or [self.sun_prefix + user.username])[0],
        }
        if user.email:
            claims.update(email=user.email, email_verified=True)
        if user.first_name or user.last_name:
            claims["name"] = " ".join(x for x in (user.first_name, user.last_name) if x)
        if not aud:
            del claims["aud"]
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token_response(self, user: User, client: Client, *, refresh: bool = True) -> dict[str, Any]:
        claims = self.access_claims(user, client)
        body: dict[str, Any] = {
            "access_token": self.sign(claims),
            "expires_in": self.token_lifespan,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "session_state": claims["sid"],
            "scope": claims["scope"],
        }
        if refresh:
            refresh_claims = {
                "exp": claims["iat"] + 1800,
                "iat": claims["iat"],
                "jti": str(uuid.uuid4()),
                "iss": self.issuer,
                "aud": self.issuer,
                "sub": user.id,
                "typ": "Refresh",
                "azp": client.client_id,
                "sid": claims["sid"],
            }
            body.update(refresh_token=self.sign(refresh_claims), refresh_expires_in=1800)
        return body

    def grant(self, form: dict[str, str], basic: tuple[str, str] | None) -> dict[str, Any]:
        """Answer a token-endpoint request (password, client_credentials, refresh_token)."""
        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret"))
        grant_type = form.get("grant_type", "")
        with self.lock:
            client = self.client(client_id, secret)
            if grant_type == "password":
                if not client.direct_access_grants:
                    raise GrantError(
                        "unauthorized_client", "Client not allowed for direct access grants"
                    )
                user = self.user_by_name(form.get("username", ""))
                password = form.get("password", "")
                if (
                    user is None
                    or user.password is None
                    or not secrets.compare_digest(password, user.password)
                ):
                    raise GrantError("invalid_grant", "Invalid user credentials", 401)
                if not user.enabled:
                    raise GrantError("invalid_grant", "Account disabled")
                return self.token_response(user, client)
            if grant_type == "client_credentials":
                sa = next(
                    (u for u in self.users.values() if u.service_account_of == client.client_id),
                    None,
                )
                if client.public or sa is None:
                    raise GrantError(
                        "unauthorized_client", "Client not enabled to retrieve service account"
                    )
                return self.token_response(sa, client, refresh=False)
            if grant_type == "refresh_token":
                claims = self.verify(form.get("refresh_token", ""), typ="Refresh")
                user = self.users.get(str(claims.get("sub")))
                if user is None or not user.enabled or claims.get("azp") != client.client_id:
                    raise GrantError("invalid_grant", "Invalid refresh token")
                return self.token_response(user, client)
            raise GrantError("unsupported_grant_type", f"Unsupported grant_type {grant_type!r}")

    def verify(self, token: str, typ: str = "Bearer") -> dict[str, Any]:
        """Claims of a token this realm issued (for the admin API and refresh grant)."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key.private.public_key(),
                algorithms=["RS256"],
                issuer=self.issuer,
                options={"verify_aud": False, "require": ["exp", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise GrantError("invalid_grant", f"Invalid token: {exc}", 401) from None
        if claims.get("typ") != typ:
            raise GrantError("invalid_grant", "Invalid token type", 401)
        return claims

    def admin_roles(self, token: str) -> set[str]:
        """The realm-management roles of a bearer token (empty when it is not valid)."""
        try:
            claims = self.verify(token)
        except GrantError:
            return set()
        user = self.users.get(str(claims.get("sub")))
        if user is None:
            return set()
        return set(user.client_roles.get(REALM_MANAGEMENT, set()))

    def discovery(self) -> dict[str, Any]:
        base = f"{self.issuer}/protocol/openid-connect"
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{base}/auth",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}/certs",
            "end_session_endpoint": f"{base}/logout",
            "grant_types_supported": ["password", "client_credentials", "refresh_token"],
            "response_types_supported": ["code", "token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "preferred_username",
                "email",
                "groups",
                "sun",
            ],
            "scopes_supported": ["openid", "profile", "email"],
        }

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.jwk()]}


def _client_secret(client_id: str, state_dir: Path | None) -> str:
    """The secret of a confidential client: read from, or generated into, the state dir."""
    if state_dir is None:
        return secrets.token_urlsafe(24)
    path = state_dir / f"{client_id}.secret"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(24)
    path.touch(mode=0o600)
    path.write_text(value + "\n", encoding="utf-8")
    return value
