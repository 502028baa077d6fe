"""The two Entra endpoints MSAL calls for client credentials when instance discovery is off:

GET  /{tenant}/v2.0/.well-known/openid-configuration   (MSAL's tenant discovery; gives it the token endpoint)
POST /{tenant}/oauth2/v2.0/token                        (grant_type=client_credentials, client_secret_post)
"""

from __future__ import annotations

import threading
from urllib.parse import parse_qsl, urlsplit

import orjson

from simulator.response import Response
from simulator.tokens import Authority, TokenError, aad_error

_JSON = "application/json; charset=utf-8"


class EntraApi:
    def __init__(self, authority: Authority, base_url: str) -> None:
        self.authority = authority
        self.base_url = base_url
        self.token_requests = 0
        self._lock = threading.Lock()

    def handle(self, method: str, target: str, body: bytes) -> Response:
        segments = [s for s in urlsplit(target).path.split("/") if s]
        try:
            if method == "GET" and segments[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                self.authority.check_tenant(segments[0])
                return self._json(200, self.authority.openid_configuration(self.base_url))
            if method == "POST" and segments[1:] == ["oauth2", "v2.0", "token"]:
                with self._lock:
                    self.token_requests += 1
                form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
                return self._json(200, self.authority.issue(segments[0], form))
        except TokenError as exc:
            return self._json(exc.status, exc.body)
        return self._json(404, aad_error("invalid_request", 90010, f"The endpoint {target} is not supported by the "
                                                                    "simulator."))

    @staticmethod
    def _json(status: int, payload: dict) -> Response:
        return Response(status, orjson.dumps(payload), {"Cache-Control": "no-store, no-cache"}, _JSON)
