-- import-history.sql - moves the Python system's history from the staging schema
-- legacy_import (filled by import-history.sh) into this system's tables. Run in one
-- transaction (psql -1): everything or nothing. Rows whose id exists are skipped, so a
-- rerun imports only new rows. What changes on the way, and why (docs/migration.md):
--
-- * model type 'forecast' / 'arima' becomes 'forecast_arima' (this system's name);
-- * a job the old system left 'pending' or 'running' never ran (its training was a mock and
--   its queue had no consumer): it is imported as 'cancelled' with the reason in
--   error_message, so it neither blocks the one-active-job rule nor gets executed now;
-- * a 'planned' or 'running' A/B test has no paired samples to be judged on here: imported
--   as 'cancelled'; its old winner and "confidence" are kept as recorded;
-- * of the old open alerts of the types this system keeps one open alert for (per machine
--   and model type), only the newest stays open, and only when none is open here already;
--   the others are imported resolved ('resolved', by 'import').
-- Every imported row is marked: metadata / alert_details / decision_notes say where it came
-- from.
\pset tuples_only on
\pset format unaligned

WITH ins AS (
    INSERT INTO machines (id, name, type, location, rated_power_kw)
    SELECT id, name,
           CASE WHEN type IN ('compressor', 'hvac', 'motor', 'pump', 'injection_molding',
                              'conveyor', 'boiler') THEN type ELSE 'other' END,
           location,
           CASE WHEN rated_power_kw > 0 THEN rated_power_kw END
    FROM legacy_import.machines
    ON CONFLICT (id) DO NOTHING
    RETURNING 1)
SELECT 'machines imported: ' || count(*) FROM ins;

WITH ins AS (
    INSERT INTO model_training_history (
        id, model_id, model_type, model_version, machine_id, training_start, training_end,
        training_duration_seconds, training_status, training_data_start, training_data_end,
        training_samples, hyperparameters, feature_names, training_metrics,
        validation_metrics, error_message, trigger_type, triggered_by, created_at, metadata,
        progress, reason, updated_at)
    SELECT id, model_id,
           CASE WHEN model_type IN ('forecast', 'arima') THEN 'forecast_arima'
                ELSE model_type END,
           model_version, machine_id, training_start, training_end,
           training_duration_seconds,
           CASE WHEN training_status IN ('pending', 'running') THEN 'cancelled'
                ELSE training_status END,
           training_data_start, training_data_end, training_samples,
           COALESCE(hyperparameters, '{}'), feature_names,
           COALESCE(training_metrics, '{}'), COALESCE(validation_metrics, '{}'),
           CASE WHEN training_status IN ('pending', 'running')
                THEN 'imported from the previous system, where it stayed '
                     || training_status || ' and never ran'
                ELSE error_message END,
           COALESCE(trigger_type, 'manual'), triggered_by,
           COALESCE(created_at, training_start, now()),
           COALESCE(metadata, '{}')
               || jsonb_build_object('imported_from', 'python', 'old_status', training_status),
           CASE WHEN training_status = 'completed' THEN 100 ELSE 0 END,
           'imported',
           COALESCE(training_end, training_start, created_at, now())
    FROM legacy_import.training
    ON CONFLICT (id) DO NOTHING
    RETURNING 1)
SELECT 'training jobs imported: ' || count(*) FROM ins;

WITH ins AS (
    INSERT INTO model_performance_metrics (
        id, model_id, model_type, machine_id, model_version, evaluation_date,
        evaluation_start, evaluation_end, sample_count, metrics, r_squared, rmse, mae, mape,
        precision_score, recall_score, f1_score, true_positives, false_positives,
        true_negatives, false_negatives, drift_detected, drift_score, drift_threshold,
        data_completeness, outlier_percentage, evaluation_notes, created_at, created_by,
        metadata)
    SELECT id, model_id,
           CASE WHEN model_type IN ('forecast', 'arima') THEN 'forecast_arima'
                ELSE model_type END,
           machine_id, model_version, COALESCE(evaluation_date, evaluation_end, created_at, now()),
           evaluation_start, evaluation_end, sample_count, COALESCE(metrics, '{}'), r_squared,
           rmse, mae, mape, precision_score, recall_score, f1_score, true_positives,
           false_positives, true_negatives, false_negatives, COALESCE(drift_detected, false),
           drift_score, drift_threshold, data_completeness, outlier_percentage,
           evaluation_notes, COALESCE(created_at, now()), created_by,
           COALESCE(metadata, '{}') || '{"imported_from": "python"}'
    FROM legacy_import.metrics
    ON CONFLICT (id) DO NOTHING
    RETURNING 1)
SELECT 'evaluations imported: ' || count(*) FROM ins;

WITH ins AS (
    INSERT INTO model_ab_tests (
        id, test_name, model_type, machine_id, model_a_id, model_a_version, model_b_id,
        model_b_version, test_start, test_end, test_status, traffic_split_a, traffic_split_b,
        model_a_metrics, model_b_metrics, winner_model_id, winner_declared_at,
        statistical_significance, confidence_level, decision, decision_notes, decided_by,
        decided_at)
    SELECT id, test_name,
           CASE WHEN model_type IN ('forecast', 'arima') THEN 'forecast_arima'
                ELSE model_type END,
           machine_id, model_a_id, model_a_version, model_b_id, model_b_version,
           COALESCE(test_start, now()), test_end,
           CASE WHEN test_status IN ('planned', 'running') THEN 'cancelled'
                ELSE test_status END,
           COALESCE(traffic_split_a, 0.5), COALESCE(traffic_split_b, 1 - COALESCE(traffic_split_a, 0.5)),
           COALESCE(model_a_metrics, '{}'), COALESCE(model_b_metrics, '{}'), winner_model_id,
           winner_declared_at, statistical_significance, COALESCE(confidence_level, 0.95),
           decision,
           concat_ws(' ', decision_notes,
                     '[imported from the previous system (status ' || test_status
                     || '); its winner was the higher R² without a statistical test]'),
           decided_by, decided_at
    FROM legacy_import.ab_tests
    ON CONFLICT (id) DO NOTHING
    RETURNING 1)
SELECT 'A/B tests imported: ' || count(*) FROM ins;

-- One open alert per (type, machine, model type) for the de-duplicated types
-- (uq_model_alerts_open): rank the old open ones, newest first.
WITH ranked AS (
    SELECT a.*,
           a.alert_type IN ('drift_detected', 'performance_degradation', 'data_quality',
                            'anomaly_detected') AS deduplicated,
           row_number() OVER (PARTITION BY a.alert_type, a.machine_id, COALESCE(a.model_type, ''),
                                           COALESCE(a.is_resolved, false)
                              ORDER BY a.alert_timestamp DESC, a.id) AS newest
    FROM legacy_import.alerts a
), judged AS (
    SELECT r.*,
           NOT COALESCE(r.is_resolved, false)
           AND r.deduplicated
           AND (r.newest > 1 OR EXISTS (
                SELECT 1 FROM model_alerts m
                WHERE NOT m.is_resolved AND m.alert_type = r.alert_type
                  AND m.machine_id IS NOT DISTINCT FROM r.machine_id
                  AND COALESCE(m.model_type, '') = COALESCE(r.model_type, '')
                  AND m.id <> r.id)) AS superseded
    FROM ranked r
), ins AS (
    INSERT INTO model_alerts (
        id, alert_type, severity, model_id, model_type, model_version, machine_id,
        alert_timestamp, alert_message, alert_details, current_metric_value, threshold_value,
        baseline_metric_value, is_resolved, resolved_at, resolution_action, resolved_by,
        resolution_notes, auto_action_taken, auto_action_type, auto_action_result)
    SELECT id, alert_type, COALESCE(severity, 'warning'), model_id,
           CASE WHEN model_type IN ('forecast', 'arima') THEN 'forecast_arima'
                ELSE model_type END,
           model_version, machine_id, COALESCE(alert_timestamp, now()), alert_message,
           COALESCE(alert_details, '{}') || '{"imported_from": "python"}',
           current_metric_value, threshold_value, baseline_metric_value,
           COALESCE(is_resolved, false) OR superseded,
           CASE WHEN superseded THEN now() ELSE resolved_at END,
           CASE WHEN superseded THEN 'resolved' ELSE resolution_action END,
           CASE WHEN superseded THEN 'import' ELSE resolved_by END,
           CASE WHEN superseded THEN 'superseded at import by a newer open alert of the same kind'
                ELSE resolution_notes END,
           COALESCE(auto_action_taken, false), auto_action_type, auto_action_result
    FROM judged
    ON CONFLICT (id) DO NOTHING
    RETURNING 1)
SELECT 'alerts imported: ' || count(*) FROM ins;

DROP SCHEMA legacy_import CASCADE;
