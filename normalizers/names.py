"""What the lake calls the normalizer's output. No imports: the query side reads these without pyarrow."""

TABLE = "security_alerts"
LOG_TYPE = "MicrosoftGraph.SecurityAlert"
