-- A version of an alert that reopened it (resolved before, not now) or raised its severity, against the version
-- before it. Versions updated in the lookback are compared with their predecessors; an alert lives in its creation
-- day's partition, so alerts created up to 30 days before the lookback are read.
WITH versions AS (
    SELECT tenantId, id, title, serviceSource, status, severity, lastUpdateDateTime, p_event_time, p_row_id,
           alertWebUrl, p_any_usernames, p_any_ip_addresses, p_log_type, p_source_id, p_source_label,
           lag(status) OVER previous AS previous_status, lag(severity) OVER previous AS previous_severity
    FROM security_alerts
    WHERE p_event_time >= $since - INTERVAL 30 DAY AND p_event_time < $until
    WINDOW previous AS (PARTITION BY tenantId, serviceSource, id ORDER BY lastUpdateDateTime)
),
ranked AS (
    SELECT *,
           CASE severity WHEN 'informational' THEN 1 WHEN 'low' THEN 2 WHEN 'medium' THEN 3 WHEN 'high' THEN 4
                ELSE 0 END AS severity_rank,
           CASE previous_severity WHEN 'informational' THEN 1 WHEN 'low' THEN 2 WHEN 'medium' THEN 3
                WHEN 'high' THEN 4 ELSE 0 END AS previous_rank
    FROM versions
    WHERE lastUpdateDateTime >= $since AND lastUpdateDateTime < $until
)
SELECT tenantId, id, title, serviceSource, status, severity, previous_status, previous_severity,
       lastUpdateDateTime, p_event_time, p_row_id, alertWebUrl, p_any_usernames, p_any_ip_addresses, p_log_type,
       p_source_id, p_source_label,
       CASE WHEN previous_status = 'resolved' AND status <> 'resolved' THEN 'reopened' ELSE 'escalated' END AS change
FROM ranked
WHERE (previous_status = 'resolved' AND status <> 'resolved')
   OR (previous_rank > 0 AND severity_rank > previous_rank)
ORDER BY lastUpdateDateTime
