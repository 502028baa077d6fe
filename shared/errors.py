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


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (SDK errors run to pages), or its type when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
