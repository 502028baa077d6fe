-- Entra ID Protection judged a sign-in risky (riskLevelDuringSignIn medium or high, or riskState atRisk or
-- confirmedCompromised) or recorded a user risk event, and within four hours a Graph alert names the same user
-- (any spelling in p_any_usernames, canonical on both sides): one row per user and alert, with the first risk.
WITH risks AS (
    SELECT DISTINCT unnest(p_any_usernames) AS upn, p_event_time AS risk_time, category AS risk_source
    FROM entra_signin_logs
    WHERE p_event_time >= $since AND p_event_time < $until
      AND (lower(coalesce(json_extract_string(properties, '$.riskLevelDuringSignIn'), '')) IN ('medium', 'high')
           OR lower(coalesce(json_extract_string(properties, '$.riskState'), '')) IN ('atrisk', 'confirmedcompromised'))
    UNION
    SELECT DISTINCT unnest(p_any_usernames), p_event_time, category
    FROM entra_risk_events
    WHERE p_event_time >= $since AND p_event_time < $until AND category = 'UserRiskEvents'
),
alerts AS (
    SELECT id, upn, min(p_event_time) AS alert_time, arg_min(title, p_event_time) AS title,
           arg_min(serviceSource, p_event_time) AS serviceSource
    FROM (SELECT id, unnest(p_any_usernames) AS upn, p_event_time, title, serviceSource
          FROM security_alerts
          WHERE p_event_time >= $since AND p_event_time < $until AND coalesce(severity, '') <> 'informational')
    GROUP BY id, upn
)
SELECT a.upn AS "user", a.id, a.title, a.serviceSource, a.alert_time AS p_event_time, min(r.risk_time) AS risk_time,
       list(DISTINCT r.risk_source ORDER BY r.risk_source) AS risk_sources, [a.upn] AS p_any_usernames
FROM alerts AS a
JOIN risks AS r ON r.upn = a.upn AND a.alert_time >= r.risk_time AND a.alert_time < r.risk_time + INTERVAL 4 HOUR
GROUP BY a.upn, a.id, a.title, a.serviceSource, a.alert_time
ORDER BY a.alert_time, a.id, "user"
