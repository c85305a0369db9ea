-- 003_performance_ab_alerts.sql: the seed system's monitoring tables, with every column its
-- clients used: model_performance_metrics (one row per evaluation of a deployed model),
-- model_ab_tests (two versions compared on live data) and model_alerts (drift, degradation and
-- failed training, with their resolution).

CREATE TABLE model_performance_metrics (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    model_id            uuid,
    model_type          text NOT NULL,
    machine_id          uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    model_version       integer,
    evaluation_date     timestamptz NOT NULL DEFAULT now(),
    evaluation_start    timestamptz,
    evaluation_end      timestamptz,
    sample_count        integer,
    metrics             jsonb NOT NULL DEFAULT '{}',
    r_squared           double precision,
    rmse                double precision,
    mae                 double precision,
    mape                double precision,
    precision_score     double precision,
    recall_score        double precision,
    f1_score            double precision,
    true_positives      integer,
    false_positives     integer,
    true_negatives      integer,
    false_negatives     integer,
    drift_detected      boolean NOT NULL DEFAULT false,
    drift_score         double precision,
    drift_threshold     double precision,
    data_completeness   double precision,
    outlier_percentage  double precision,
    evaluation_notes    text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    created_by          text,
    metadata            jsonb NOT NULL DEFAULT '{}',
    CONSTRAINT model_performance_metrics_model_type_check
        CHECK (model_type IN ('baseline', 'anomaly', 'forecast_arima', 'probe')),
    CONSTRAINT model_performance_metrics_window_check
        CHECK (evaluation_end >= evaluation_start),
    CONSTRAINT model_performance_metrics_sample_count_check CHECK (sample_count >= 0),
    CONSTRAINT model_performance_metrics_errors_check
        CHECK (rmse >= 0 AND mae >= 0 AND mape >= 0),
    CONSTRAINT model_performance_metrics_scores_check
        CHECK (precision_score BETWEEN 0 AND 1 AND recall_score BETWEEN 0 AND 1
               AND f1_score BETWEEN 0 AND 1),
    CONSTRAINT model_performance_metrics_counts_check
        CHECK (true_positives >= 0 AND false_positives >= 0 AND true_negatives >= 0
               AND false_negatives >= 0),
    CONSTRAINT model_performance_metrics_percent_check
        CHECK (data_completeness BETWEEN 0 AND 100 AND outlier_percentage BETWEEN 0 AND 100)
);

-- Metric trend and "latest evaluation" per machine and model type.
CREATE INDEX ix_performance_machine_model_date
    ON model_performance_metrics (machine_id, model_type, evaluation_date DESC);
CREATE INDEX ix_performance_model ON model_performance_metrics (model_id, evaluation_date DESC);

CREATE TABLE model_ab_tests (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    test_name                text NOT NULL,
    model_type               text NOT NULL,
    machine_id               uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    model_a_id               uuid NOT NULL,
    model_a_version          integer,
    model_b_id               uuid NOT NULL,
    model_b_version          integer,
    test_start               timestamptz NOT NULL DEFAULT now(),
    test_end                 timestamptz,
    test_status              text NOT NULL DEFAULT 'planned',
    traffic_split_a          double precision NOT NULL DEFAULT 0.5,
    traffic_split_b          double precision NOT NULL DEFAULT 0.5,
    model_a_metrics          jsonb NOT NULL DEFAULT '{}',
    model_b_metrics          jsonb NOT NULL DEFAULT '{}',
    winner_model_id          uuid,
    winner_declared_at       timestamptz,
    statistical_significance double precision,
    confidence_level         double precision NOT NULL DEFAULT 0.95,
    decision                 text,
    decision_notes           text,
    decided_by               text,
    decided_at               timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT model_ab_tests_model_type_check
        CHECK (model_type IN ('baseline', 'anomaly', 'forecast_arima', 'probe')),
    CONSTRAINT model_ab_tests_status_check
        CHECK (test_status IN ('planned', 'running', 'completed', 'cancelled')),
    CONSTRAINT model_ab_tests_decision_check
        CHECK (decision IN ('promote_a', 'promote_b', 'no_winner', 'manual_review')),
    CONSTRAINT model_ab_tests_window_check CHECK (test_end > test_start),
    CONSTRAINT model_ab_tests_split_check
        CHECK (traffic_split_a BETWEEN 0 AND 1 AND traffic_split_b BETWEEN 0 AND 1
               AND abs(traffic_split_a + traffic_split_b - 1) < 1e-9),
    CONSTRAINT model_ab_tests_winner_check
        CHECK (winner_model_id IS NULL OR winner_model_id IN (model_a_id, model_b_id)),
    CONSTRAINT model_ab_tests_p_value_check CHECK (statistical_significance BETWEEN 0 AND 1),
    CONSTRAINT model_ab_tests_confidence_check CHECK (confidence_level > 0 AND confidence_level < 1)
);

CREATE INDEX ix_ab_tests_machine_model ON model_ab_tests (machine_id, model_type, test_start DESC);
CREATE INDEX ix_ab_tests_running ON model_ab_tests (test_start) WHERE test_status = 'running';

CREATE TABLE model_alerts (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    alert_type            text NOT NULL,
    severity              text NOT NULL DEFAULT 'warning',
    model_id              uuid,
    model_type            text,
    model_version         integer,
    machine_id            uuid REFERENCES machines (id) ON DELETE CASCADE,
    alert_timestamp       timestamptz NOT NULL DEFAULT now(),
    alert_message         text NOT NULL,
    alert_details         jsonb NOT NULL DEFAULT '{}',
    current_metric_value  double precision,
    threshold_value       double precision,
    baseline_metric_value double precision,
    is_resolved           boolean NOT NULL DEFAULT false,
    resolved_at           timestamptz,
    resolution_action     text,
    resolved_by           text,
    resolution_notes      text,
    auto_action_taken     boolean NOT NULL DEFAULT false,
    auto_action_type      text,
    auto_action_result    text,
    CONSTRAINT model_alerts_alert_type_check CHECK (alert_type ~ '^[a-z][a-z0-9_]{0,63}$'),
    CONSTRAINT model_alerts_severity_check CHECK (severity IN ('normal', 'warning', 'critical')),
    CONSTRAINT model_alerts_model_type_check
        CHECK (model_type IN ('baseline', 'anomaly', 'forecast_arima', 'probe')),
    CONSTRAINT model_alerts_resolution_action_check
        CHECK (resolution_action IN ('retrained_model', 'acknowledged', 'false_positive')),
    CONSTRAINT model_alerts_auto_action_type_check
        CHECK (auto_action_type IN ('auto_retrain', 'rollback', 'notify')),
    CONSTRAINT model_alerts_resolved_at_check CHECK (NOT is_resolved OR resolved_at IS NOT NULL)
);

-- Open alerts, most severe and newest first; filters by machine and model type.
CREATE INDEX ix_alerts_open ON model_alerts (alert_timestamp DESC) WHERE NOT is_resolved;
CREATE INDEX ix_alerts_machine_model ON model_alerts (machine_id, model_type, alert_timestamp DESC);
