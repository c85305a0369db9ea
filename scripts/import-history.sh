#!/usr/bin/env bash
# import-history.sh - copies the history of the Python system this one replaces
# (machines, training jobs, evaluations, A/B tests, alerts) into this system's
# database. Usage:
#
#   ENMS_PG_DSN=postgresql://.../enms scripts/import-history.sh OLD_DSN
#
# The old tables are read with plain SELECTs (nothing is written to the old
# database), streamed with \copy into a staging schema `legacy_import` of the
# new database, and moved into the real tables by import-history.sql in ONE
# transaction: either everything is imported or nothing is (a row the new
# constraints refuse names itself in the error). Rows whose id already exists
# are skipped, so a second run imports only what is new. Readings are not
# copied here: export them to CSV and load them with `enmsctl import`
# (docs/migration.md).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OLD=${1:-}
NEW=${ENMS_PG_DSN:-}
if [[ -z "$OLD" || $# -ne 1 ]]; then
  echo "usage: ENMS_PG_DSN=NEW_DSN $0 OLD_DSN" >&2
  exit 2
fi
if [[ -z "$NEW" ]]; then
  echo "import-history: ENMS_PG_DSN (the new database) is not set" >&2
  exit 2
fi

# NOTICEs (DROP ... CASCADE) are noise for whoever runs this.
new_psql() { PGOPTIONS="-c client_min_messages=warning" psql "$NEW" -X -q -v ON_ERROR_STOP=1 "$@"; }

# The old columns, as docs/migration.md lists them. Columns are named, never
# `*`, so an old table with extra columns still imports.
declare -A SELECTS=(
  [machines]="SELECT id, name, type, location, rated_power_kw FROM machines"
  [training]="SELECT id, model_id, model_type, model_version, machine_id, training_start,
      training_end, training_duration_seconds, training_status, training_data_start,
      training_data_end, training_samples, hyperparameters, feature_names, training_metrics,
      validation_metrics, error_message, trigger_type, triggered_by, created_at, metadata
      FROM model_training_history"
  [metrics]="SELECT id, model_id, model_type, machine_id, model_version, evaluation_date,
      evaluation_start, evaluation_end, sample_count, metrics, r_squared, rmse, mae, mape,
      precision_score, recall_score, f1_score, true_positives, false_positives,
      true_negatives, false_negatives, drift_detected, drift_score, drift_threshold,
      data_completeness, outlier_percentage, evaluation_notes, created_at, created_by, metadata
      FROM model_performance_metrics"
  [ab_tests]="SELECT id, test_name, model_type, machine_id, model_a_id, model_a_version,
      model_b_id, model_b_version, test_start, test_end, test_status, traffic_split_a,
      traffic_split_b, model_a_metrics, model_b_metrics, winner_model_id, winner_declared_at,
      statistical_significance, confidence_level, decision, decision_notes, decided_by,
      decided_at
      FROM model_ab_tests"
  [alerts]="SELECT id, alert_type, severity, model_id, model_type, model_version, machine_id,
      alert_timestamp, alert_message, alert_details, current_metric_value, threshold_value,
      baseline_metric_value, is_resolved, resolved_at, resolution_action, resolved_by,
      resolution_notes, auto_action_taken, auto_action_type, auto_action_result
      FROM model_alerts"
)

# Staging tables typed like the old ones: a value the old type does not allow
# fails here, before anything reaches the real tables.
new_psql <<'SQL'
DROP SCHEMA IF EXISTS legacy_import CASCADE;
CREATE SCHEMA legacy_import;
CREATE TABLE legacy_import.machines (id uuid, name text, type text, location text,
    rated_power_kw double precision);
CREATE TABLE legacy_import.training (id uuid, model_id uuid, model_type text,
    model_version integer, machine_id uuid, training_start timestamptz,
    training_end timestamptz, training_duration_seconds double precision,
    training_status text, training_data_start timestamptz, training_data_end timestamptz,
    training_samples integer, hyperparameters jsonb, feature_names text[],
    training_metrics jsonb, validation_metrics jsonb, error_message text, trigger_type text,
    triggered_by text, created_at timestamptz, metadata jsonb);
CREATE TABLE legacy_import.metrics (id uuid, model_id uuid, model_type text, machine_id uuid,
    model_version integer, evaluation_date timestamptz, evaluation_start timestamptz,
    evaluation_end timestamptz, sample_count integer, metrics jsonb,
    r_squared double precision, rmse double precision, mae double precision,
    mape double precision, precision_score double precision, recall_score double precision,
    f1_score double precision, true_positives integer, false_positives integer,
    true_negatives integer, false_negatives integer, drift_detected boolean,
    drift_score double precision, drift_threshold double precision,
    data_completeness double precision, outlier_percentage double precision,
    evaluation_notes text, created_at timestamptz, created_by text, metadata jsonb);
CREATE TABLE legacy_import.ab_tests (id uuid, test_name text, model_type text, machine_id uuid,
    model_a_id uuid, model_a_version integer, model_b_id uuid, model_b_version integer,
    test_start timestamptz, test_end timestamptz, test_status text,
    traffic_split_a double precision, traffic_split_b double precision,
    model_a_metrics jsonb, model_b_metrics jsonb, winner_model_id uuid,
    winner_declared_at timestamptz, statistical_significance double precision,
    confidence_level double precision, decision text, decision_notes text, decided_by text,
    decided_at timestamptz);
CREATE TABLE legacy_import.alerts (id uuid, alert_type text, severity text, model_id uuid,
    model_type text, model_version integer, machine_id uuid, alert_timestamp timestamptz,
    alert_message text, alert_details jsonb, current_metric_value double precision,
    threshold_value double precision, baseline_metric_value double precision,
    is_resolved boolean, resolved_at timestamptz, resolution_action text, resolved_by text,
    resolution_notes text, auto_action_taken boolean, auto_action_type text,
    auto_action_result text);
SQL

for t in machines training metrics ab_tests alerts; do
  # One line per statement for \copy; CSV keeps arrays, JSON and NULLs intact.
  q=$(tr '\n' ' ' <<<"${SELECTS[$t]}")
  psql "$OLD" -X -q -v ON_ERROR_STOP=1 -c "\\copy ($q) TO STDOUT WITH (FORMAT csv)" |
    new_psql -c "\\copy legacy_import.$t FROM STDIN WITH (FORMAT csv)"
done

new_psql -1 -f "$HERE/import-history.sql"
