-- A pass-the-hash alert (Defender for Identity) followed within two hours by a Defender for Endpoint alert on a
-- device the pass-the-hash alert names. Devices are compared by host name (the first label of deviceDnsName, lower
-- case), since one product may give an FQDN and the other a short name.
WITH devices AS (
    SELECT e.alert_id, e.p_row_id, e.p_event_time, e.serviceSource,
           lower(split_part(e.device_dns_name, '.', 1)) AS host, lower(e.device_dns_name) AS dns_name
    FROM security_alert_evidence AS e
    WHERE e.evidence_type = 'deviceEvidence' AND e.device_dns_name IS NOT NULL
      AND e.p_event_time >= $since - INTERVAL 2 HOUR AND e.p_event_time < $until
),
pass_the_hash AS (
    SELECT DISTINCT d.alert_id, d.p_event_time, d.host, d.dns_name, a.title
    FROM devices AS d JOIN security_alerts AS a ON a.p_row_id = d.p_row_id
    WHERE a.detectorId = 'PassTheHashSecurityAlert' OR lower(a.title) LIKE '%pass-the-hash%'
)
SELECT p.alert_id AS id, p.title AS pass_the_hash_title, p.host AS device, p.p_event_time,
       list(DISTINCT d.alert_id ORDER BY d.alert_id) AS endpoint_alert_ids, min(d.p_event_time) AS first_endpoint_alert,
       list_sort(list_distinct(list(d.dns_name) || [p.dns_name])) AS p_any_domain_names
FROM pass_the_hash AS p
JOIN devices AS d ON d.host = p.host AND d.serviceSource = 'microsoftDefenderForEndpoint'
                 AND d.p_event_time >= p.p_event_time AND d.p_event_time <= p.p_event_time + INTERVAL 2 HOUR
GROUP BY p.alert_id, p.title, p.host, p.dns_name, p.p_event_time
ORDER BY p.p_event_time
