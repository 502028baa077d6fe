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


def lake_access(lake_url: str) -> LakeAccess | None:
    """The Azure SDK variables a remote lake URL may need; a local lake needs none, and a search of one does not
    pay for reading them (the settings module loads pydantic)."""
    from shared.core.blob_url import url_scheme

    if url_scheme(lake_url) in ("", "file"):
        return None
    from shared.core.settings import load_lake_access

    return load_lake_access()
