-- 004_views.sql: the seed system's three views, by the same names: latest evaluation per
-- machine and model type, running A/B tests with their age, and open alerts most severe first.
-- Ages are double precision hours computed at query time.

CREATE VIEW v_latest_model_performance AS
SELECT DISTINCT ON (p.machine_id, p.model_type)
    p.id,
    p.model_id,
    p.model_type,
    p.machine_id,
    m.name AS machine_name,
    m.type AS machine_type,
    p.model_version,
    p.evaluation_date,
    p.evaluation_start,
    p.evaluation_end,
    p.sample_count,
    p.metrics,
    p.r_squared,
    p.rmse,
    p.mae,
    p.mape,
    p.precision_score,
    p.recall_score,
    p.f1_score,
    p.true_positives,
    p.false_positives,
    p.true_negatives,
    p.false_negatives,
    p.drift_detected,
    p.drift_score,
    p.drift_threshold,
    p.data_completeness,
    p.outlier_percentage,
    p.evaluation_notes,
    p.created_at,
    p.created_by
FROM model_performance_metrics p
JOIN machines m ON m.id = p.machine_id
ORDER BY p.machine_id, p.model_type, p.evaluation_date DESC, p.created_at DESC, p.id;

CREATE VIEW v_active_ab_tests AS
SELECT
    t.id,
    t.test_name,
    t.model_type,
    t.machine_id,
    m.name AS machine_name,
    t.model_a_id,
    t.model_a_version,
    t.model_b_id,
    t.model_b_version,
    t.test_start,
    t.test_end,
    t.test_status,
    t.traffic_split_a,
    t.traffic_split_b,
    t.model_a_metrics,
    t.model_b_metrics,
    t.confidence_level,
    (extract(epoch FROM now() - t.test_start) / 3600.0)::double precision AS hours_running,
    (extract(epoch FROM t.test_end - now()) / 3600.0)::double precision AS hours_remaining
FROM model_ab_tests t
JOIN machines m ON m.id = t.machine_id
WHERE t.test_status = 'running'
ORDER BY t.test_start;

-- severity_rank (0 critical, 1 warning, 2 normal) is exposed so callers that filter or page
-- this view can keep the same order with ORDER BY severity_rank, alert_timestamp DESC.
CREATE VIEW v_unresolved_model_alerts AS
SELECT
    a.id,
    a.alert_type,
    a.severity,
    CASE a.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END AS severity_rank,
    a.model_id,
    a.model_type,
    a.model_version,
    a.machine_id,
    m.name AS machine_name,
    a.alert_timestamp,
    a.alert_message,
    a.alert_details,
    a.current_metric_value,
    a.threshold_value,
    a.baseline_metric_value,
    a.is_resolved,
    a.auto_action_taken,
    a.auto_action_type,
    a.auto_action_result,
    (extract(epoch FROM now() - a.alert_timestamp) / 3600.0)::double precision AS hours_open
FROM model_alerts a
LEFT JOIN machines m ON m.id = a.machine_id
WHERE NOT a.is_resolved
ORDER BY severity_rank, a.alert_timestamp DESC, a.id;
