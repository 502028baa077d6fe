"""Graph's `/security/alerts_v2` as routes: request line and headers in, `Response` out.

Order of checks follows Graph: token (401), app roles (403), throttling (429), then the call itself, where a
configured share fails with 5xx. Paging choices, none documented by Microsoft (reference §5):
- `$top` is the page size and nextLink continues while more results exist, as on most Graph collections;
  without `$top` pages hold 100, and `$top` above 2000 is clamped to 2000, the cap connectors use.
- nextLink carries an opaque `$skiptoken` (base64 JSON of filter, offset, page size, count) and is re-evaluated on
  every call, so alerts that arrive or change while paging shift later pages, as with Graph's own `$skip`.
- `/alerts_v2/$count` answers the number of matching alerts as text/plain.
- `$orderby` is accepted and ignored: the documented order is newest createdDateTime first and consumers must not
  depend on another. `$select`, `$expand` and `$search` are refused.
- Every answer carries a `Date` header (RFC 9110 §6.6.1) of Graph's own clock (`graph_now`), unless a fault strips it.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from simulator.faults import FaultInjector
from simulator.odata import FilterError
from simulator.response import Response, graph_error, new_request_id
from simulator.tenant import Tenant
from simulator.timefmt import from_datetime, to_datetime
from simulator.tokens import READ_ROLES, Authority, InvalidToken

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 2000
_COLLECTION = "security/alerts_v2"
_REFUSED_OPTIONS = ("$select", "$expand", "$search", "$format", "$apply", "$compute")
_KNOWN_OPTIONS = ("$filter", "$top", "$skip", "$count", "$skiptoken", "$orderby")
_ERROR_CODES = {500: "InternalServerError", 502: "BadGateway", 503: "ServiceNotAvailable", 504: "GatewayTimeout"}
_PREFER_UNKNOWN = "include-unknown-enum-members"
_SERVED_QUERIES = 64


@dataclass(slots=True)
class Counters:
    calls: int = 0
    throttled: int = 0
    errors: int = 0
    dropped_next_links: int = 0
    pages: int = 0
    page_updates: int = 0
    malformed_timestamps: int = 0
    missing_ids: int = 0
    clock_ahead_runs: int = 0


@dataclass(frozen=True, slots=True)
class _PageState:
    filter: str | None
    skip: int
    size: int
    count: bool

    def token(self) -> str:
        raw = orjson.dumps({"f": self.filter, "s": self.skip, "t": self.size, "c": self.count})
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def from_token(cls, token: str) -> _PageState:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        state = orjson.loads(raw)
        parsed = cls(state["f"], int(state["s"]), int(state["t"]), bool(state["c"]))
        if parsed.skip < 0 or not 0 < parsed.size <= MAX_PAGE_SIZE:
            raise ValueError("skip token out of range")
        return parsed


class _BadRequest(Exception):
    pass


def _non_negative(name: str, text: str) -> int:
    if not text.isdigit():
        raise _BadRequest(f"Invalid value '{text}' for {name} query option found. The {name} query option "
                          "requires a non-negative integer value.")
    return int(text)


class GraphApi:
    def __init__(self, tenant: Tenant, authority: Authority, faults: FaultInjector, base_url: str) -> None:
        self.tenant = tenant
        self.authority = authority
        self.faults = faults
        self.base_url = base_url
        self.counters = Counters()
        # Guards the counters and the served lists, and wakes whoever waits for a counter or for held calls.
        self._changed = threading.Condition()
        self._held = False
        self._waiting = 0
        self._served: dict[str | None, list[tuple[str, str]]] = {}

    def _count(self, name: str, by: int = 1) -> None:
        with self._changed:
            setattr(self.counters, name, getattr(self.counters, name) + by)
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[Counters], bool], timeout: float) -> bool:
        """Blocks until `predicate(counters)` holds (True) or `timeout` seconds pass (False)."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.counters), timeout)

    def hold(self, held: bool) -> None:
        """While held, every Graph call waits before it is answered; releasing lets them all through at once."""
        with self._changed:
            self._held = held
            self._changed.notify_all()

    def wait_for_held(self, calls: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._waiting >= calls, timeout)

    def _pass_hold(self) -> None:
        with self._changed:
            if not self._held:
                return
            self._waiting += 1
            self._changed.notify_all()
            self._changed.wait_for(lambda: not self._held)
            self._waiting -= 1

    def _remember_served(self, state: _PageState, items: list[bytes]) -> None:
        """(id, lastUpdateDateTime) of what each query's pages served so far, for updates between its page
        requests; the newest queries only."""
        shown = [(alert["id"], alert["lastUpdateDateTime"]) for alert in map(orjson.loads, items)]
        with self._changed:
            served = [] if not state.skip else self._served.pop(state.filter, [])
            self._served[state.filter] = served + shown
            while len(self._served) > _SERVED_QUERIES:
                self._served.pop(next(iter(self._served)))

    def _malformed(self, item: bytes) -> bytes:
        alert = orjson.loads(item)
        stamp = alert["lastUpdateDateTime"]
        served = self.faults.served_timestamp(alert["id"], stamp)
        if served == stamp:
            return item
        self._count("malformed_timestamps")
        return item.replace(b'"lastUpdateDateTime":"%s"' % stamp.encode(),
                            b'"lastUpdateDateTime":"%s"' % served.encode(), 1)

    def _without_id(self, item: bytes) -> bytes:
        alert = orjson.loads(item)
        if not self.faults.drops_id(alert["id"]):
            return item
        self._count("missing_ids")
        del alert["id"]
        return orjson.dumps(alert)

    def graph_now(self) -> datetime:
        """Graph's clock: the host's, behind by the fault's lag; or the tenant's, when a test moved that ahead (the
        tenant's clock only moves when versions are made, so it is never ahead of a Graph that made them)."""
        graph = from_datetime(self.faults.graph_clock(datetime.now(UTC)))
        return to_datetime(max(graph, self.tenant.clock))

    def handle(self, method: str, target: str, headers: dict[str, str]) -> Response:
        """`headers` keys are lower-case."""
        response = self._answer(method, target, headers)
        if not self.faults.faults.strip_date_header:
            response.headers["Date"] = format_datetime(self.graph_now(), usegmt=True)
        return response

    def _answer(self, method: str, target: str, headers: dict[str, str]) -> Response:
        self._pass_hold()
        self._count("calls")
        request_id = new_request_id()
        client_request_id = headers.get("client-request-id")

        def error(status: int, code: str, message: str, extra: dict[str, str] | None = None) -> Response:
            return graph_error(status, code, message, request_id, client_request_id, extra)

        try:
            claims = self.authority.validate(headers.get("authorization"))
        except InvalidToken as exc:
            return error(401, "InvalidAuthenticationToken", str(exc))
        if not set(claims.get("roles", ())) & set(READ_ROLES):
            roles = ", ".join(claims.get("roles", ()))
            return error(403, "Forbidden", "Missing application roles. API required roles: "
                                           f"{', '.join(READ_ROLES)}. API application roles: {roles}.")
        if self.faults.faults.latency_seconds:
            time.sleep(self.faults.faults.latency_seconds)
        retry_after = self.faults.throttle(claims.get("appid", ""), time.monotonic())
        if retry_after is not None:
            self._count("throttled")
            return error(429, "TooManyRequests", "Too many requests.", {"Retry-After": str(retry_after)})
        failure = self.faults.server_error()
        if failure is not None:
            self._count("errors")
            return error(failure, _ERROR_CODES[failure], "The service is temporarily unavailable (simulated).")

        if method != "GET":
            return error(405, "Request_BadRequest", f"The {method} method is not supported by the simulator.")
        prefer = {p.strip().lower() for p in headers.get("prefer", "").split(",")}
        include_unknown = _PREFER_UNKNOWN in prefer
        parts = urlsplit(target)
        segments = [unquote(s) for s in parts.path.split("/") if s]
        if len(segments) < 3 or segments[0] not in ("v1.0", "beta") or segments[1:3] != ["security", "alerts_v2"]:
            tail = segments[-1] if segments else ""
            return error(400, "BadRequest", f"Resource not found for the segment '{tail}'.")
        try:
            if len(segments) == 3:
                response = self._list(parts.query, include_unknown, segments[0])
            elif segments[3:] == ["$count"]:
                response = self._count_only(parts.query)
            elif len(segments) == 4:
                response = self._get(segments[3], include_unknown, segments[0])
                if response is None:
                    return error(404, "NotFound", f"Alert with id '{segments[3]}' was not found.")
            else:
                return error(400, "BadRequest", f"Resource not found for the segment '{segments[4]}'.")
        except (_BadRequest, FilterError) as exc:
            return error(400, "BadRequest", str(exc))
        response.headers["request-id"] = request_id
        response.headers["client-request-id"] = client_request_id or request_id
        if include_unknown:
            response.headers["Preference-Applied"] = _PREFER_UNKNOWN
        return response

    def _get(self, alert_id: str, include_unknown: bool, version: str) -> Response | None:
        raw = self.tenant.alert_json(alert_id, include_unknown)
        if raw is None:
            return None
        context = orjson.dumps(f"{self.base_url}/{version}/$metadata#{_COLLECTION}/$entity")
        return Response(200, b'{"@odata.context":' + context + b"," + raw[1:])

    def _count_only(self, query: str) -> Response:
        total, _ = self.tenant.query_json(dict(parse_qsl(query)).get("$filter"), 0)
        return Response(200, str(total).encode(), content_type="text/plain")

    def _list(self, query: str, include_unknown: bool, version: str) -> Response:
        options = dict(parse_qsl(query, keep_blank_values=True))
        refused = next((name for name in options if name.lower() in _REFUSED_OPTIONS), None)
        if refused:
            raise _BadRequest(f"Query option '{refused}' is not allowed. To allow it, set the 'AllowedQueryOptions' "
                              "property on EnableQueryAttribute or QueryValidationSettings.")
        unknown = next((n for n in options if n.startswith("$") and n.lower() not in _KNOWN_OPTIONS), None)
        if unknown:
            raise _BadRequest(f"The query parameter '{unknown}' is not supported.")
        if "$skiptoken" in options:
            try:
                state = _PageState.from_token(options["$skiptoken"])
            except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError):
                raise _BadRequest("The $skiptoken value is not valid.") from None
        else:
            count_text = options.get("$count", "false").lower()
            if count_text not in ("true", "false"):
                raise _BadRequest(f"'{options['$count']}' is not a valid count option.")
            top = _non_negative("$top", options["$top"]) if "$top" in options else DEFAULT_PAGE_SIZE
            skip = _non_negative("$skip", options["$skip"]) if "$skip" in options else 0
            state = _PageState(options.get("$filter"), skip, min(top, MAX_PAGE_SIZE), count_text == "true")

        updates = self.faults.faults.page_updates
        if updates and state.skip:
            made = self.tenant.update_served(self._served.get(state.filter, []), updates, now=self.graph_now())
            self._count("page_updates", len(made))
        total, items = self.tenant.query_json(state.filter, state.size, state.skip, include_unknown,
                                              shuffle_seed=self.faults.shuffle_seed())
        if updates:
            self._remember_served(state, items)
        if self.faults.faults.malformed_timestamp_rate:
            items = [self._malformed(item) for item in items]
        if self.faults.faults.missing_id_rate:
            items = [self._without_id(item) for item in items]
        self._count("pages")
        body = [b'{"@odata.context":', orjson.dumps(f"{self.base_url}/{version}/$metadata#{_COLLECTION}")]
        if state.count:
            body.append(b',"@odata.count":%d' % total)
        more = bool(items) and state.skip + len(items) < total
        if more and len(items) == state.size and self.faults.drop_next_link():
            self._count("dropped_next_links")
            more = False
        if more:
            following = _PageState(state.filter, state.skip + len(items), state.size, state.count)
            link = f"{self.base_url}/{version}/{_COLLECTION}?$skiptoken={following.token()}"
            body += [b',"@odata.nextLink":', orjson.dumps(link)]
        body += [b',"value":[', b",".join(items), b"]}"]
        return Response(200, b"".join(body))
