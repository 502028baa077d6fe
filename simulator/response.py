"""An HTTP answer as plain data, so routing logic stays apart from sockets; and Graph's error shape."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import orjson

GRAPH_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = GRAPH_JSON


def graph_error(status: int, code: str, message: str, request_id: str, client_request_id: str | None = None,
                headers: dict[str, str] | None = None) -> Response:
    """Graph's error body: {"error": {"code", "message", "innerError": {date, request-id, client-request-id}}}."""
    inner = {"date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "request-id": request_id,
             "client-request-id": client_request_id or request_id}
    body = orjson.dumps({"error": {"code": code, "message": message, "innerError": inner}})
    return Response(status, body, headers or {})


def new_request_id() -> str:
    return str(uuid.uuid4())
