-- One user named in alerts from at least three providers (serviceSource) within an hour: one row per user, for
-- the first hour-long window in the lookback that has three.
WITH sightings AS (
    SELECT DISTINCT unnest(p_any_usernames) AS user_name, id, serviceSource, p_event_time
    FROM security_alerts
    WHERE p_event_time >= $since AND p_event_time < $until AND coalesce(severity, '') <> 'informational'
),
windows AS (
    SELECT s.user_name, s.p_event_time AS window_start,
           list(DISTINCT o.serviceSource ORDER BY o.serviceSource) AS providers,
           list(DISTINCT o.id ORDER BY o.id) AS alert_ids
    FROM sightings AS s
    JOIN sightings AS o ON o.user_name = s.user_name AND o.p_event_time >= s.p_event_time
                       AND o.p_event_time < s.p_event_time + INTERVAL 1 HOUR
    GROUP BY s.user_name, s.p_event_time
    HAVING count(DISTINCT o.serviceSource) >= 3
)
SELECT user_name AS "user", window_start AS p_event_time, providers, alert_ids, alert_ids[1] AS id,
       [user_name] AS p_any_usernames
FROM windows
QUALIFY row_number() OVER (PARTITION BY user_name ORDER BY window_start) = 1
ORDER BY user_name
