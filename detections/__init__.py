"""Detections: panther-analysis-style rules over the lake's rows, rule matches in the lake, alerts to destinations.

- `loader.py` loads rules (`NAME.py` + `NAME.yml`, or `NAME.sql` + `NAME.yml` for scheduled rules) from the starter
  pack (`detections/rules/`) and a user's folder, refusing a malformed rule with a one-line reason.
- `event.py` is what a rule sees: a row as a read-only mapping, JSON columns parsed, with `deep_get`.
- `engine.py` evaluates real-time rules on a batch's rows; `matches.py` writes the `rule_matches` table.
- `dedup.py` is Panther's grouping of matches into alerts (dedup string, DedupPeriodMinutes, Threshold);
  `alerts.py` applies it to live matches in the state store, with ETag-conditional writes; `delivery.py` and `destinations.py` send them and keep what could not be sent.
- `scheduled.py` runs scheduled rules (SQL over the lake); `testing.py` runs each rule's Tests; `backtest.py`
  runs rules over the lake without writing or sending anything (`graphlake rules backtest`).
"""
