"""Errors a person can act on. Each message is one line that names what to fix."""


class GraphlakeError(Exception):
    """Base of the errors that graphlake reports as one line instead of a traceback."""


class ConfigError(GraphlakeError):
    """A setting is missing or malformed; the message names it."""


class PermissionMissing(GraphlakeError):
    """Graph answered 401/403: the identity lacks SecurityAlert.Read.All or its token predates consent."""


class EndpointUnreachable(GraphlakeError):
    """An endpoint (Graph, the authority, storage, Event Hubs) could not be reached; the message names it."""


class PreconditionFailed(GraphlakeError):
    """A conditional write lost a race: someone else changed the blob since we read it."""


def one_line(error: BaseException | str, *, with_type: bool = False, limit: int = 300) -> str:
    """An error as one line for a message, a log or a quarantine record: its text with every run of whitespace
    (newlines included) made one space, at most `limit` characters (SDK errors run to pages). An exception without
    a message gives its type's name; `with_type` prefixes the type's name anyway (a bare KeyError says only the
    key)."""
    line = " ".join((error if isinstance(error, str) else str(error)).split())
    if isinstance(error, BaseException) and (with_type or not line):
        line = f"{type(error).__name__}: {line}" if line else type(error).__name__
    line = line or "no details"
    return line if len(line) <= limit else line[:limit - 1] + "…"
