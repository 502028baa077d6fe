"""What pull_alerts puts on Event Hubs and normalize_alerts expects: shared by both without importing either side
(the normalizer's cold start must not load the Event Hubs or Graph SDKs)."""

SCHEMA_NAME = "MicrosoftGraph.SecurityAlertV2"  # normalizers.names.LOG_TYPE (core imports no stage)
# Key of the small JSON body that stands in for an alert too large for a batch; its value names the blob.
CLAIM_CHECK_KEY = "graphlake_claim_check"
# Every claim check blob is under this prefix of the state container, and a pointer may name nothing else: the
# container also holds watermarks, health records and quarantined events, which are not alerts to land. A storage
# lifecycle rule deletes the blobs some days after Event Hubs retention, when no delivery can need them any more.
CLAIM_CHECK_PREFIX = "claimchecks/"
