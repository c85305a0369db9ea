-- 006_monitoring.sql: what model monitoring needs beyond the seed's tables: job kinds (the
-- queue also runs evaluations and anomaly scoring), detected anomalies, the paired samples of
-- A/B tests, alert acknowledgement and de-duplication, and each machine's time zone.

-- Evaluation and scoring jobs travel the same queue as training, with the same recovery. Each
-- kind has its own "one active job per machine and model type" rule, so an evaluation never
-- blocks a retrain (and the seed's 409 rule for training keeps its index name).
ALTER TABLE model_training_history
    ADD COLUMN job_kind text NOT NULL DEFAULT 'train',
    ADD CONSTRAINT model_training_history_job_kind_check
        CHECK (job_kind IN ('train', 'evaluate', 'score'));

DROP INDEX uq_training_active_job;
CREATE UNIQUE INDEX uq_training_active_job ON model_training_history (model_type, machine_id)
    WHERE training_status IN ('pending', 'running') AND model_type <> 'probe'
          AND job_kind = 'train';
CREATE UNIQUE INDEX uq_monitoring_active_job
    ON model_training_history (job_kind, model_type, machine_id)
    WHERE training_status IN ('pending', 'running') AND job_kind <> 'train';

-- The machine's local time offset from UTC in minutes (hour-of-day and weekday features and
-- daily baselines use local days). NULL: the worker falls back to demo_truth, then UTC.
ALTER TABLE machines
    ADD COLUMN utc_offset_minutes integer,
    ADD CONSTRAINT machines_utc_offset_check CHECK (utc_offset_minutes BETWEEN -840 AND 840);

-- Hours the active anomaly model flagged. One row per machine and hour: a later scoring (by a
-- newer version) updates the score but keeps the user's label. label feeds the precision of
-- later evaluations: confirmed counts as a true anomaly, false_positive as a normal hour.
CREATE TABLE anomalies (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    machine_id       uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    ts               timestamptz NOT NULL,
    score            double precision NOT NULL,
    severity         text NOT NULL,
    detector         text NOT NULL,
    energy_kwh       double precision,
    expected_kwh     double precision,
    features         jsonb NOT NULL DEFAULT '{}',
    model_version_id uuid REFERENCES model_versions (id) ON DELETE SET NULL,
    model_version    integer,
    label            text,
    labelled_at      timestamptz,
    labelled_by      text,
    notes            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_anomalies_machine_ts UNIQUE (machine_id, ts),
    CONSTRAINT anomalies_severity_check CHECK (severity IN ('warning', 'critical')),
    CONSTRAINT anomalies_score_check
        CHECK (score > '-Infinity'::double precision AND score < 'Infinity'::double precision),
    CONSTRAINT anomalies_label_check CHECK (label IN ('confirmed', 'false_positive')),
    CONSTRAINT anomalies_labelled_check CHECK (label IS NULL OR labelled_at IS NOT NULL)
);

CREATE INDEX ix_anomalies_machine_ts ON anomalies (machine_id, ts DESC);

-- Where the scoring of new readings got to, per machine (the newest hour scored).
CREATE TABLE anomaly_scoring_state (
    machine_id       uuid PRIMARY KEY REFERENCES machines (id) ON DELETE CASCADE,
    scored_until     timestamptz NOT NULL,
    model_version_id uuid REFERENCES model_versions (id) ON DELETE SET NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Shadow-mode A/B testing: every evaluation during a test scores both versions on the same new
-- data; each row is one paired sample (an hour for anomaly and forecast models, a day for
-- baselines) with both versions' losses. The paired test in /ab-test/{id}/results reads these.
CREATE TABLE model_ab_test_samples (
    test_id     uuid NOT NULL REFERENCES model_ab_tests (id) ON DELETE CASCADE,
    sample_ts   timestamptz NOT NULL,
    actual      double precision,
    predicted_a double precision,
    predicted_b double precision,
    loss_a      double precision NOT NULL,
    loss_b      double precision NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (test_id, sample_ts),
    CONSTRAINT model_ab_test_samples_loss_check
        CHECK (loss_a >= 0 AND loss_a < 'Infinity'::double precision AND loss_b >= 0
               AND loss_b < 'Infinity'::double precision)
);

ALTER TABLE model_ab_tests
    ADD COLUMN paired_samples integer NOT NULL DEFAULT 0,
    ADD COLUMN test_method text,
    ADD COLUMN results jsonb NOT NULL DEFAULT '{}';

-- Acknowledging keeps an alert open but shows someone is on it. Open alerts of the monitoring
-- types are de-duplicated per machine and model type: a repeat updates the open one
-- (alert_details.occurrences) instead of piling up rows.
ALTER TABLE model_alerts
    ADD COLUMN acknowledged_at timestamptz,
    ADD COLUMN acknowledged_by text,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
    DROP CONSTRAINT model_alerts_resolution_action_check,
    ADD CONSTRAINT model_alerts_resolution_action_check
        CHECK (resolution_action IN ('retrained_model', 'acknowledged', 'false_positive',
                                     'rolled_back', 'resolved'));

CREATE UNIQUE INDEX uq_model_alerts_open
    ON model_alerts (alert_type, machine_id, COALESCE(model_type, ''))
    WHERE NOT is_resolved
          AND alert_type IN ('drift_detected', 'performance_degradation', 'data_quality',
                             'anomaly_detected');
