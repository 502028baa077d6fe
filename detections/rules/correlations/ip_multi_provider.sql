-- One IP address in alerts from at least two providers (serviceSource) within an hour: one row per address, for
-- the first hour-long window in the lookback that has two.
WITH sightings AS (
    SELECT DISTINCT unnest(p_any_ip_addresses) AS ip, id, serviceSource, p_event_time
    FROM security_alerts
    WHERE p_event_time >= $since AND p_event_time < $until AND coalesce(severity, '') <> 'informational'
),
windows AS (
    SELECT s.ip, s.p_event_time AS window_start,
           list(DISTINCT o.serviceSource ORDER BY o.serviceSource) AS providers,
           list(DISTINCT o.id ORDER BY o.id) AS alert_ids
    FROM sightings AS s
    JOIN sightings AS o ON o.ip = s.ip AND o.p_event_time >= s.p_event_time
                       AND o.p_event_time < s.p_event_time + INTERVAL 1 HOUR
    GROUP BY s.ip, s.p_event_time
    HAVING count(DISTINCT o.serviceSource) >= 2
)
SELECT ip, window_start AS p_event_time, providers, alert_ids, alert_ids[1] AS id,
       [ip] AS p_any_ip_addresses
FROM windows
QUALIFY row_number() OVER (PARTITION BY ip ORDER BY window_start) = 1
ORDER BY ip
