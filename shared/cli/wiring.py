"""What the commands build from the settings and hand to the stages: the rules, the sink, a remote lake's access."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detections.realtime import Detector
    from shared.core.settings import LakeAccess, Settings


def detector(settings: Settings, rules_dir: str | None = None) -> Detector | None:
    """The rules every landing of the command runs: RULES_ENABLED and RULES_DIR, or --rules (on whatever they say);
    None when detections are off."""
    from detections.realtime import build_detector

    return build_detector(settings, rules_dir)


def drain_outbox(detector: Detector | None, state_url: str) -> None:
    """At the end of a command that landed with rules on: the alerts still waiting, sent as run_scheduled_rules
    sends them, since a command's batches try only their own alerts and only briefly, and no timer runs here."""
    if detector is None or not detector.sends:
        return
    from datetime import UTC, datetime

    from detections.realtime import deliver_queued
    from shared.core.storage import open_store

    deliver_queued(detector, open_store(state_url), datetime.now(UTC))


def lake_url(flag: str | None) -> str:
    """Where a command's lake is: --lake, else LAKE_URL, else ./lake; said on stderr when --lake was not given, so a
    backfill never goes to ./lake unnoticed while the settings point at Blob Storage."""
    return _where(flag, "LAKE_URL", "lake", "--lake")


def state_url(flag: str | None) -> str:
    """Where a command's state is: --state, else STATE_URL, else ./state; said like the lake."""
    return _where(flag, "STATE_URL", "state", "--state")


def _where(flag: str | None, name: str, what: str, option: str) -> str:
    if flag:
        return flag
    import click

    from shared.core.settings import load_settings

    settings = load_settings(only=(name,))
    url = settings.lake_url if name == "LAKE_URL" else settings.state_url
    why = f"from {name}" if settings.is_set(name) else f"the default; {option} or {name} names another"
    click.echo(f"graphlake: {what} {url} ({why})", err=True)
    return url


def lake_access(lake_url: str) -> LakeAccess | None:
    """The Azure SDK variables a remote lake URL may need; a local lake needs none, and a search of one does not
    pay for reading them (the settings module loads pydantic)."""
    from shared.core.blob_url import url_scheme

    if url_scheme(lake_url) in ("", "file"):
        return None
    from shared.core.settings import load_lake_access

    return load_lake_access()
