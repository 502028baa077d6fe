// graphlake alert rules (a module of infra/main.bicep): log search alert rules on graphlake's health records, in the
// Log Analytics workspace, and the action group that mails them when alertEmail is set.
//
// Parameters: main.bicep's, under the same names (it documents them and sets their limits), and the names main.bicep
// computes (namePrefix and token name the rules). The workspace is the monitoring module's, referenced by its name
// (main.bicep deploys this module after it).

param location string
param tags object
param namePrefix string
param token string
param actionGroupName string
param logAnalyticsName string
param alertEmail string
param alertConsecutiveFailures int
param pullMaxLagSeconds int
param logsMaxSilenceSeconds int
param pullMaxClockSkewSeconds int

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsName
}

// Every run logs its health record (shared/core/health.py) as one trace line `graphlake.health {json}`, which
// workspace-based Application Insights stores in the workspace's AppTraces table, Message column. The rules read
// the record's fields (component, key, result, consecutive_failures, lag_seconds, quarantined, late_found, ...)
// from that JSON. Shapes as in Microsoft's samples: the action group as in azure-quickstart-templates
// quickstarts/microsoft.insights/insights-alertrules-servicehealth/main.bicep, the log search alert rules as in
// "Resource Manager template samples for log search alert rules in Azure Monitor"
// (https://learn.microsoft.com/azure/azure-monitor/alerts/resource-manager-alerts-log) and the type reference
// Microsoft.Insights/scheduledQueryRules.
var healthEvents = '''
AppTraces
| where Message startswith "graphlake.health {"
| extend h = parse_json(substring(Message, strlen("graphlake.health ")))
| extend component = tostring(h.component), key = tostring(h.key)
'''

// Each rule fires when its query returns a row (one alert per `dimension` value: a source or a partition), except
// pull-silent, which fires when no pull reported at all in its window (the app stopped, or cannot start).
// A field or column named like a KQL keyword (`missing`) is written bracketed, h["missing"] and ["missing"]: bare, the
// query does not parse (tests/infra/test_alert_rules.py runs Microsoft's Kusto parser on every query).
var alertRules = [
  {
    name: 'pull-failing'
    severity: 1
    window: 'PT15M'
    operator: 'GreaterThan'
    dimension: 'source'
    description: 'A source failed ${alertConsecutiveFailures} pull runs in a row or more: its alerts are not reaching the lake. The error says why (403: the Graph permission; 429/5xx: Graph; storage or Event Hubs errors). Or its last run found the watermark ahead of the clock (a host clock that ran ahead, or an edited watermark) and repaired it: versions Graph showed late meanwhile may have passed every window; the hourly reconciliation looks for them. Or its last run ran on a clock more than ${pullMaxClockSkewSeconds} seconds (PULL_MAX_CLOCK_SKEW_SECONDS) ahead of Graph\'s (the Date header of its answers): fix the host\'s time sync.'
    query: '${healthEvents}| where component == "pull" | summarize arg_max(TimeGenerated, h) by key | where toint(h.consecutive_failures) >= ${alertConsecutiveFailures} or todouble(h.watermark_ahead_seconds) > 0 or todouble(h.clock_skew_seconds) > ${pullMaxClockSkewSeconds} | project source = key, consecutive_failures = toint(h.consecutive_failures), error = tostring(h.error), watermark_ahead_seconds = todouble(h.watermark_ahead_seconds), clock_skew_seconds = todouble(h.clock_skew_seconds)'
  }
  {
    name: 'pull-lagging'
    severity: 2
    window: 'PT15M'
    operator: 'GreaterThan'
    dimension: 'source'
    description: 'A source lags more than ${pullMaxLagSeconds} seconds (PULL_MAX_LAG_SECONDS) behind Graph (its watermark against the time of the run), or has slices it could not confirm complete.'
    query: '${healthEvents}| where component == "pull" | summarize arg_max(TimeGenerated, h) by key | where todouble(h.lag_seconds) > ${pullMaxLagSeconds} or toint(h.unconfirmed_slices) > 0 | project source = key, lag_minutes = round(todouble(h.lag_seconds) / 60, 1), watermark = tostring(h.watermark), unconfirmed_slices = toint(h.unconfirmed_slices)'
  }
  {
    name: 'pull-silent'
    severity: 1
    window: 'PT30M'
    operator: 'LessThan'
    dimension: ''
    description: 'No pull reported its health for 30 minutes: the function app is stopped, cannot start, or cannot log.'
    query: '${healthEvents}| where component == "pull" | project source = key, result = tostring(h.result)'
  }
  {
    name: 'normalize-failing'
    severity: 1
    window: 'PT15M'
    operator: 'GreaterThan'
    dimension: 'partition'
    description: 'The normalizer failed on a partition, or gave up on a batch and quarantined it whole: events are not reaching the lake until it recovers (graphlake replay re-ingests the quarantined ones after a fix).'
    query: '${healthEvents}| where component == "normalize" and tostring(h.result) in ("failed", "gave_up") | summarize arg_max(TimeGenerated, h) by key | project partition = key, result = tostring(h.result), consecutive_failures = toint(h.consecutive_failures), error = tostring(h.error)'
  }
  {
    name: 'quarantine-growing'
    severity: 2
    window: 'PT15M'
    operator: 'GreaterThan'
    dimension: 'partition'
    description: 'Events were quarantined: bad input, or a batch the normalizer gave up on. graphlake replay re-ingests them after a fix.'
    query: '${healthEvents}| where component == "normalize" | summarize quarantined = sum(toint(h.quarantined)) by key | where quarantined > 0 | project partition = key, quarantined'
  }
  {
    name: 'normalize-logs-failing'
    severity: 1
    window: 'PT15M'
    operator: 'GreaterThan'
    dimension: 'partition'
    description: 'normalize_logs failed on a partition of the logs hub, or gave up on a batch and quarantined it whole: Entra and Activity log records are not reaching the lake until it recovers (graphlake replay re-ingests the quarantined ones after a fix).'
    query: '${healthEvents}| where component == "normalize_logs" and tostring(h.result) in ("failed", "gave_up") | summarize arg_max(TimeGenerated, h) by key | project partition = key, result = tostring(h.result), consecutive_failures = toint(h.consecutive_failures), error = tostring(h.error)'
  }
  {
    name: 'logs-quarantine-growing'
    severity: 2
    window: 'PT15M'
    operator: 'GreaterThan'
    dimension: 'partition'
    description: 'Azure Monitor records were quarantined by normalize_logs: a record it cannot read (a category or shape it does not know), or a batch it gave up on. graphlake replay re-ingests them after a fix.'
    query: '${healthEvents}| where component == "normalize_logs" | summarize quarantined = sum(toint(h.quarantined)) by key | where quarantined > 0 | project partition = key, quarantined'
  }
  {
    // A day's look-back: logs that stopped more than a day ago are out of the window and the alert resolves
    // (graphlake status, reading the records, keeps saying so).
    name: 'logs-silent'
    severity: 2
    window: 'PT24H'
    operator: 'GreaterThan'
    dimension: ''
    description: 'normalize_logs has landed no Azure Monitor record for more than ${logsMaxSilenceSeconds} seconds (LOGS_MAX_SILENCE_SECONDS), after landing some in the last day: the logs that were streaming stopped (a diagnostic setting removed or pointed elsewhere, the logs hub renamed, or the trigger stopped). A deployment that never streamed logs never fires it.'
    query: '${healthEvents}| where component == "normalize_logs" | extend landed = todatetime(h.last_landed) | summarize last_landed = max(landed) | where isnotnull(last_landed) and last_landed < ago(${logsMaxSilenceSeconds}s) | project last_landed'
  }
  {
    name: 'reconcile-late-alerts'
    severity: 3
    window: 'PT1H'
    operator: 'GreaterThan'
    dimension: 'source'
    description: 'Reconciliation found alert versions the lake lacked: Graph published them later than the pull overlap covers (re-sent; reconcile-not-landing fires if they do not land), some could not be re-sent, or reconciliation failed.'
    query: '${healthEvents}| where component == "reconcile" | where toint(h.late_found) > 0 or toint(h.unsent) > 0 or tostring(h.result) != "ok" | project source = key, late_found = toint(h.late_found), ["missing"] = toint(h["missing"]), resent = toint(h.resent), unsent = toint(h.unsent), error = tostring(h.error)'
  }
  {
    // Hourly runs: two hours hold the latest record of each source whatever the minute it ran at.
    name: 'reconcile-not-landing'
    severity: 1
    window: 'PT2H'
    operator: 'GreaterThan'
    dimension: 'source'
    description: 'Versions the reconciliation re-sent in two runs in a row have not landed: the normalizer is not consuming the hub (its Event Hub trigger stopped, or EVENTHUB_CONSUMER_GROUP names another group). Nothing sent reaches the lake until it does; Event Hubs keeps the events for its retention.'
    query: '${healthEvents}| where component == "reconcile" | summarize arg_max(TimeGenerated, h) by key | where toint(h.not_landed) > 0 | project source = key, not_landed = toint(h.not_landed), since = tostring(h.not_landed_since), eventhub = tostring(h.eventhub), consumer_group = tostring(h.consumer_group)'
  }
  {
    name: 'detections-undelivered'
    severity: 2
    window: 'PT30M'
    operator: 'GreaterThan'
    dimension: ''
    description: 'Every delivery run of the last 30 minutes left detection alerts in the outbox: a destination keeps failing, or ALERT_DESTINATIONS cannot be used. The alerts wait there and are sent once it is fixed; the error says which destination.'
    query: '${healthEvents}| where component == "detections" and key == "delivery" | summarize waiting = min(toint(h.undelivered)), error = take_anyif(tostring(h.error), isnotempty(tostring(h.error))) | where waiting > 0 | project waiting, error'
  }
]

// No e-mail, no action group: the rules still fire and show in the portal (Monitor > Alerts).
resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'graphlake'
    enabled: true
    emailReceivers: [
      {
        name: 'graphlake-operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource healthAlerts 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for rule in alertRules: {
  name: '${namePrefix}-${rule.name}-${token}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'graphlake: ${rule.name}'
    description: rule.description
    severity: rule.severity
    enabled: true
    scopes: [
      logAnalytics.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: rule.window
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: 'Count'
          operator: rule.operator
          threshold: rule.operator == 'LessThan' ? 1 : 0
          dimensions: empty(rule.dimension) ? [] : [
            {
              name: rule.dimension
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    // A new workspace has no AppTraces rows until the app first logs; the queries are checked offline instead, with
    // Microsoft's Kusto parser (tests/infra/test_alert_rules.py).
    skipQueryValidation: true
    actions: {
      actionGroups: empty(alertEmail) ? [] : [
        resourceId('Microsoft.Insights/actionGroups', actionGroupName)
      ]
    }
  }
  dependsOn: [
    actionGroup
  ]
}]
