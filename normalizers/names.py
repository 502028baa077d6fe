"""What the lake calls the normalizer's output. No imports: the query side reads these without pyarrow."""

TABLE = "security_alerts"
# Panther's name for alerts_v2 (panther-analysis PR #2042), the log type rules name.
LOG_TYPE = "MicrosoftGraph.SecurityAlertV2"
# What rows landed before said: the views read it as LOG_TYPE, compaction rewrites it (README: The lake).
LEGACY_LOG_TYPE = "MicrosoftGraph.SecurityAlert"
