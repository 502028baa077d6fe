"""The simulated Entra ID: registered apps, client-credentials tokens, and Graph's checks on them.

Tokens are JWT-shaped like Entra's v1 app tokens (aud, iss, tid, appid, roles, exp). They are signed with HS256
and a per-run key only so the Graph side can tell its own tokens from forged ones without keeping state.
Errors carry the AADSTS codes and wording Entra uses, so client error handling meets the real text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass

import orjson

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
READ_ROLES = ("SecurityAlert.Read.All", "SecurityAlert.ReadWrite.All")


@dataclass(frozen=True, slots=True)
class App:
    client_id: str
    secret: str
    roles: tuple[str, ...]
    display_name: str


class TokenError(Exception):
    def __init__(self, status: int, body: dict) -> None:
        super().__init__(body.get("error_description") or body.get("message"))
        self.status = status
        self.body = body


class InvalidToken(Exception):
    """Graph's 401 InvalidAuthenticationToken; the message is Graph's."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def aad_error(error: str, code: int, description: str) -> dict:
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    return {"error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} "
                                 f"Timestamp: {stamp}",
            "error_codes": [code], "timestamp": stamp, "trace_id": trace, "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}"}


class Authority:
    """One tenant's token issuer and the matching validation Graph performs."""

    def __init__(self, tenant_id: str, apps: list[App], lifetime_seconds: int) -> None:
        self.tenant_id = tenant_id
        self.lifetime_seconds = lifetime_seconds
        self._apps = {app.client_id: app for app in apps}
        self._key = secrets.token_bytes(32)
        # Resource identifiers Graph answers to; a national cloud's Graph URL plays this role there, and
        # clients that derive the scope from their Graph endpoint ask the simulator for its own URL.
        self._resources = {GRAPH_RESOURCE, GRAPH_APP_ID}

    def add_resource(self, url: str) -> None:
        self._resources.add(url.rstrip("/"))

    def openid_configuration(self, base_url: str) -> dict:
        root = f"{base_url}/{self.tenant_id}"
        return {
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base_url}/{self.tenant_id}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{root}/v2.0",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }

    def check_tenant(self, tenant: str) -> None:
        if tenant not in (self.tenant_id, "organizations"):
            raise TokenError(400, aad_error(
                "invalid_tenant", 90002, f"Tenant '{tenant}' not found. Check to make sure you have the correct "
                "tenant ID and are signing into the correct cloud."))

    def issue(self, tenant: str, form: dict[str, str]) -> dict:
        """Client credentials grant; `form` is the decoded POST body."""
        self.check_tenant(tenant)
        if form.get("grant_type") != "client_credentials":
            raise TokenError(400, aad_error("unsupported_grant_type", 70003,
                                            "The app requested an unsupported grant type."))
        app = self._apps.get(form.get("client_id", ""))
        if app is None:
            raise TokenError(400, aad_error(
                "unauthorized_client", 700016, f"Application with identifier '{form.get('client_id')}' was not found "
                f"in the directory '{self.tenant_id}'. This can happen if the application has not been installed by "
                "the administrator of the tenant or consented to by any user in the tenant."))
        if not hmac.compare_digest(form.get("client_secret", "").encode(), app.secret.encode()):
            raise TokenError(401, aad_error(
                "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the "
                "request is the client secret value, not the client secret ID, for a secret added to app "
                f"'{app.client_id}'."))
        scopes = form.get("scope", "").split()
        resource = next((s[:-len("/.default")] for s in scopes if s.endswith("/.default")), None)
        if resource is None:
            raise TokenError(400, aad_error(
                "invalid_scope", 1002012, f"The provided value for scope {form.get('scope', '')} is not valid. Client "
                "credential flows must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI)."))
        resource = resource.rstrip("/")
        if resource not in self._resources:
            raise TokenError(400, aad_error(
                "invalid_resource", 500011, f"The resource principal named {resource} was not found in the tenant "
                f"named {self.tenant_id}. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant."))
        now = int(time.time())
        claims = {"aud": resource, "iss": f"https://sts.windows.net/{self.tenant_id}/", "iat": now,
                  "nbf": now, "exp": now + self.lifetime_seconds, "app_displayname": app.display_name,
                  "appid": app.client_id, "appidacr": "1", "idtyp": "app", "oid": str(uuid.uuid4()),
                  "roles": list(app.roles), "sub": str(uuid.uuid4()), "tid": self.tenant_id,
                  "uti": _b64(secrets.token_bytes(16)), "ver": "1.0"}
        return {"token_type": "Bearer", "expires_in": self.lifetime_seconds,
                "ext_expires_in": self.lifetime_seconds, "access_token": self._sign(claims)}

    def _sign(self, claims: dict) -> str:
        header = _b64(orjson.dumps({"typ": "JWT", "alg": "HS256", "kid": "graphlake-simulator"}))
        payload = _b64(orjson.dumps(claims))
        signature = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"

    def validate(self, authorization: str | None) -> dict:
        """Claims of a bearer token Graph accepts, else InvalidToken with Graph's message."""
        if not authorization or not authorization.startswith("Bearer ") or not authorization[7:].strip():
            raise InvalidToken("Access token is empty.")
        token = authorization[7:].strip()
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidToken("IDX14100: JWT is not well formed, there are no dots (.).")
        expected = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            valid = hmac.compare_digest(_unb64(parts[2]), expected)
            claims = orjson.loads(_unb64(parts[1]))
        except (ValueError, orjson.JSONDecodeError):
            raise InvalidToken("IDX14102: Unable to decode the token as a Base64Url encoded string.") from None
        if not valid:
            raise InvalidToken("Access token validation failure. Invalid signature.")
        if claims.get("aud") not in self._resources:
            raise InvalidToken("Access token validation failure. Invalid audience.")
        if claims.get("exp", 0) <= time.time():
            raise InvalidToken("Lifetime validation failed, the token is expired.")
        return claims
