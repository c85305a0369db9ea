"""A database shaped like the Python system this one replaces (tables and columns as
/work/shared/reference/original-system.md lists them, written here from that list, with its
looser types: no checks, free-text statuses), filled with a small history that has the old
system's incident in it: jobs left pending forever, duplicate open alerts, a running A/B test.
Used by test_import_history.py and by the docs examples (docs/migration.md)."""
import psycopg2

HVAC = "c0000000-0000-0000-0000-000000000002"
PUMP = "c0000000-0000-0000-0000-0000000000f1"  # a machine the new database does not have

DDL = """
CREATE TABLE machines (id uuid PRIMARY KEY, name text, type text, location text,
    rated_power_kw double precision, extra_column text);
CREATE TABLE model_training_history (id uuid PRIMARY KEY, model_id uuid, model_type text,
    model_version integer, machine_id uuid, training_start timestamptz, training_end timestamptz,
    training_duration_seconds double precision, training_status text,
    training_data_start timestamptz, training_data_end timestamptz, training_samples integer,
    hyperparameters jsonb, feature_names text[], training_metrics jsonb, validation_metrics jsonb,
    error_message text, trigger_type text, triggered_by text, created_at timestamptz,
    metadata jsonb);
CREATE TABLE model_performance_metrics (id uuid PRIMARY KEY, model_id uuid, model_type text,
    machine_id uuid, model_version integer, evaluation_date timestamptz,
    evaluation_start timestamptz, evaluation_end timestamptz, sample_count integer, metrics jsonb,
    r_squared double precision, rmse double precision, mae double precision, mape double precision,
    precision_score double precision, recall_score double precision, f1_score double precision,
    true_positives integer, false_positives integer, true_negatives integer,
    false_negatives integer, drift_detected boolean, drift_score double precision,
    drift_threshold double precision, data_completeness double precision,
    outlier_percentage double precision, evaluation_notes text, created_at timestamptz,
    created_by text, metadata jsonb);
CREATE TABLE model_ab_tests (id uuid PRIMARY KEY, test_name text, model_type text,
    machine_id uuid, model_a_id uuid, model_a_version integer, model_b_id uuid,
    model_b_version integer, test_start timestamptz, test_end timestamptz, test_status text,
    traffic_split_a double precision, traffic_split_b double precision, model_a_metrics jsonb,
    model_b_metrics jsonb, winner_model_id uuid, winner_declared_at timestamptz,
    statistical_significance double precision, confidence_level double precision, decision text,
    decision_notes text, decided_by text, decided_at timestamptz);
CREATE TABLE model_alerts (id uuid PRIMARY KEY, alert_type text, severity text, model_id uuid,
    model_type text, model_version integer, machine_id uuid, alert_timestamp timestamptz,
    alert_message text, alert_details jsonb, current_metric_value double precision,
    threshold_value double precision, baseline_metric_value double precision, is_resolved boolean,
    resolved_at timestamptz, resolution_action text, resolved_by text, resolution_notes text,
    auto_action_taken boolean, auto_action_type text, auto_action_result text);
"""

ROWS = """
INSERT INTO machines VALUES
  ('c0000000-0000-0000-0000-000000000002', 'HVAC-Main', 'hvac', 'Plant A', 150, 'x'),
  ('c0000000-0000-0000-0000-0000000000f1', 'Legacy-Pump-9', 'pump', 'Plant C', 22, NULL);
-- Six jobs the old queue never ran (the incident), one completed forecast, one failed.
INSERT INTO model_training_history (id, model_type, machine_id, training_start, training_status,
    trigger_type, created_at, hyperparameters, feature_names)
SELECT ('a0000000-0000-0000-0000-00000000000' || g)::uuid,
       (ARRAY['baseline', 'anomaly', 'forecast'])[1 + g % 3],
       CASE WHEN g % 2 = 0 THEN 'c0000000-0000-0000-0000-000000000002'::uuid
            ELSE 'c0000000-0000-0000-0000-0000000000f1'::uuid END,
       now() - interval '40 days', 'pending', 'manual', now() - interval '40 days', '{}',
       ARRAY['production_count', 'outdoor_temp']
FROM generate_series(1, 6) g;
INSERT INTO model_training_history VALUES
  ('a0000000-0000-0000-0000-000000000007', 'b0000000-0000-0000-0000-000000000001', 'forecast', 3,
   'c0000000-0000-0000-0000-000000000002', now() - interval '60 days',
   now() - interval '60 days' + interval '30 seconds', 30, 'completed',
   now() - interval '150 days', now() - interval '60 days', 2160, '{"p": 2, "d": 1, "q": 1}',
   ARRAY['energy_kwh'], '{"aic": 812.5, "mape": 0.0}', '{"mape": 7.5}', NULL, 'scheduled',
   'scheduler', now() - interval '60 days', '{"note": "mock"}'),
  ('a0000000-0000-0000-0000-000000000008', NULL, 'baseline', NULL,
   'c0000000-0000-0000-0000-000000000002', now() - interval '50 days', now() - interval '50 days',
   1800, 'failed', NULL, NULL, NULL, '{}', NULL, '{}', '{}',
   'Job timed out - exceeded 30 minute limit', 'drift_detected', NULL, now() - interval '50 days',
   NULL);
INSERT INTO model_performance_metrics (id, model_id, model_type, machine_id, model_version,
    evaluation_date, evaluation_start, evaluation_end, sample_count, metrics, r_squared, rmse, mae,
    drift_detected, drift_score, created_at, created_by)
VALUES ('d0000000-0000-0000-0000-000000000001', 'b0000000-0000-0000-0000-000000000002', 'baseline',
        'c0000000-0000-0000-0000-000000000002', 2, now() - interval '20 days',
        now() - interval '27 days', now() - interval '20 days', 168,
        '{"r_squared": 0.87, "rmse": 41.0, "mae": 0.0}', 0.87, 41.0, 0.0, false, 0.02,
        now() - interval '20 days', 'dashboard');
INSERT INTO model_ab_tests (id, test_name, model_type, machine_id, model_a_id, model_a_version,
    model_b_id, model_b_version, test_start, test_end, test_status, traffic_split_a,
    traffic_split_b, model_a_metrics, model_b_metrics, winner_model_id, statistical_significance,
    confidence_level)
VALUES ('e0000000-0000-0000-0000-000000000001', 'old test', 'baseline',
        'c0000000-0000-0000-0000-000000000002', 'b0000000-0000-0000-0000-000000000001', 1,
        'b0000000-0000-0000-0000-000000000002', 2, now() - interval '10 days',
        now() - interval '9 days', 'running', 0.5, 0.5, '{"r_squared": 0.85}',
        '{"r_squared": 0.87}', 'b0000000-0000-0000-0000-000000000002', 0.05, 0.95);
-- Two open drift alerts for one model (the old system piled them up) and a resolved one.
INSERT INTO model_alerts (id, alert_type, severity, model_type, machine_id, alert_timestamp,
    alert_message, alert_details, is_resolved, resolved_at, resolution_action, auto_action_taken)
VALUES ('f0000000-0000-0000-0000-000000000001', 'drift_detected', 'warning', 'baseline',
        'c0000000-0000-0000-0000-000000000002', now() - interval '5 days', 'old drift 1', '{}',
        false, NULL, NULL, false),
       ('f0000000-0000-0000-0000-000000000002', 'drift_detected', 'critical', 'baseline',
        'c0000000-0000-0000-0000-000000000002', now() - interval '2 days', 'old drift 2', '{}',
        false, NULL, NULL, false),
       ('f0000000-0000-0000-0000-000000000003', 'training_failed', 'warning', 'baseline',
        'c0000000-0000-0000-0000-000000000002', now() - interval '50 days', 'timed out', NULL,
        true, now() - interval '49 days', 'acknowledged', false);
"""


def create_legacy_db(admin_dsn, dbname):
    """Creates database dbname (dropped first if left over) shaped and filled like the old
    system; returns its DSN."""
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{dbname}"')
    conn.close()
    dsn = admin_dsn.rpartition("/")[0] + "/" + dbname
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(DDL)
        cur.execute(ROWS)
    conn.close()
    return dsn


def drop_db(admin_dsn, dbname):
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    conn.close()
