-- A sign-in (any of Entra's four kinds) from an IP address that a Graph alert names (p_any_ip_addresses of both,
-- canonical), both within the lookback: one row per address and user, at the user's first sign-in from it, with
-- the alerts that name it and whether any of the sign-ins succeeded (resultType 0).
WITH alert_ips AS (
    SELECT DISTINCT unnest(p_any_ip_addresses) AS ip, id
    FROM security_alerts
    WHERE p_event_time >= $since AND p_event_time < $until AND coalesce(severity, '') <> 'informational'
),
sign_ins AS (
    SELECT unnest(p_any_ip_addresses) AS ip, lower(json_extract_string(properties, '$.userPrincipalName')) AS upn,
           coalesce(json_extract_string(properties, '$.servicePrincipalName'), '') AS service_principal,
           p_event_time, category, resultType
    FROM entra_signin_logs
    WHERE p_event_time >= $since AND p_event_time < $until
)
SELECT s.ip, coalesce(s.upn, s.service_principal) AS "user", min(s.p_event_time) AS p_event_time,
       count(DISTINCT (s.p_event_time, s.category)) AS sign_ins, bool_or(s.resultType = '0') AS succeeded,
       list(DISTINCT a.id ORDER BY a.id) AS alert_ids, min(a.id) AS id, [s.ip] AS p_any_ip_addresses,
       CASE WHEN s.upn IS NULL THEN [] ELSE [s.upn] END AS p_any_usernames
FROM sign_ins AS s
JOIN alert_ips AS a ON a.ip = s.ip
GROUP BY s.ip, s.upn, s.service_principal
ORDER BY p_event_time, s.ip
