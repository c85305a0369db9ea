-- 002_training_jobs.sql: the job queue's record: model_training_history (one row per
-- retraining job, the seed system's table plus queue columns), model_versions (trained
-- artifacts, one active per machine and model type), job_events (every status change), and
-- the partial unique index that allows one active job per (model_type, machine_id).
--
-- model_training_history and model_versions point at each other; the history table is created
-- first and its foreign key to model_versions is added once both exist.

CREATE TABLE model_training_history (
    id                        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    model_id                  uuid,
    model_type                text NOT NULL,
    model_version             integer,
    machine_id                uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    training_start            timestamptz,
    training_end              timestamptz,
    training_duration_seconds double precision,
    training_status           text NOT NULL DEFAULT 'pending',
    training_data_start       timestamptz,
    training_data_end         timestamptz,
    training_samples          integer,
    hyperparameters           jsonb NOT NULL DEFAULT '{}',
    feature_names             text[],
    training_metrics          jsonb NOT NULL DEFAULT '{}',
    validation_metrics        jsonb NOT NULL DEFAULT '{}',
    error_message             text,
    trigger_type              text NOT NULL DEFAULT 'manual',
    triggered_by              text,
    created_at                timestamptz NOT NULL DEFAULT now(),
    metadata                  jsonb NOT NULL DEFAULT '{}',
    -- Added for the queue (not in the seed system).
    progress                  smallint NOT NULL DEFAULT 0,
    stage                     text,
    attempts                  integer NOT NULL DEFAULT 0,
    worker_id                 text,
    heartbeat_at              timestamptz,
    queue_name                text NOT NULL DEFAULT 'default',
    reason                    text,
    params                    jsonb NOT NULL DEFAULT '{}',
    result_version_id         uuid,
    cancel_requested_at       timestamptz,
    updated_at                timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT model_training_history_model_type_check
        CHECK (model_type IN ('baseline', 'anomaly', 'forecast_arima', 'probe')),
    CONSTRAINT model_training_history_status_check
        CHECK (training_status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    CONSTRAINT model_training_history_trigger_type_check
        CHECK (trigger_type IN ('manual', 'scheduled', 'drift', 'drift_detected',
                                'performance_degradation', 'ab_test')),
    CONSTRAINT model_training_history_progress_check CHECK (progress BETWEEN 0 AND 100),
    CONSTRAINT model_training_history_attempts_check CHECK (attempts >= 0),
    CONSTRAINT model_training_history_samples_check CHECK (training_samples >= 0),
    CONSTRAINT model_training_history_duration_check CHECK (training_duration_seconds >= 0),
    CONSTRAINT model_training_history_queue_name_check CHECK (queue_name ~ '^[A-Za-z0-9_.-]{1,64}$')
);

-- The rule the whole queue leans on: at most one pending or running job per machine and model
-- type. A second INSERT fails with SQLSTATE 23505 naming this index; the API turns that into
-- 409 with the existing job's id. Probe jobs (test load) are exempt.
CREATE UNIQUE INDEX uq_training_active_job ON model_training_history (model_type, machine_id)
    WHERE training_status IN ('pending', 'running') AND model_type <> 'probe';

-- Job history page: filter by machine and model type, newest first; filter by status; and the
-- unfiltered newest-first list (id breaks ties so keyset paging is stable).
CREATE INDEX ix_training_machine_model_created
    ON model_training_history (machine_id, model_type, created_at DESC);
CREATE INDEX ix_training_status_created
    ON model_training_history (training_status, created_at DESC);
CREATE INDEX ix_training_created ON model_training_history (created_at DESC, id DESC);

-- Keeps updated_at honest whoever writes the row.
CREATE FUNCTION enms_touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER trg_training_touch_updated_at
    BEFORE UPDATE ON model_training_history
    FOR EACH ROW EXECUTE FUNCTION enms_touch_updated_at();

CREATE TABLE model_versions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    machine_id      uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    model_type      text NOT NULL,
    version         integer NOT NULL,
    training_job_id uuid REFERENCES model_training_history (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    artifact        jsonb NOT NULL,
    metrics         jsonb NOT NULL DEFAULT '{}',
    is_active       boolean NOT NULL DEFAULT false,
    activated_at    timestamptz,
    notes           text,
    CONSTRAINT model_versions_model_type_check
        CHECK (model_type IN ('baseline', 'anomaly', 'forecast_arima', 'probe')),
    CONSTRAINT model_versions_version_check CHECK (version > 0),
    CONSTRAINT uq_model_versions_machine_type_version UNIQUE (machine_id, model_type, version)
);

-- One active (deployed) version per machine and model type. Activation is "deactivate the old
-- one, activate the new one" in one transaction.
CREATE UNIQUE INDEX uq_model_versions_active ON model_versions (machine_id, model_type)
    WHERE is_active;
CREATE INDEX ix_model_versions_training_job ON model_versions (training_job_id);

ALTER TABLE model_training_history
    ADD CONSTRAINT model_training_history_result_version_fkey
    FOREIGN KEY (result_version_id) REFERENCES model_versions (id) ON DELETE SET NULL;
CREATE INDEX ix_training_result_version ON model_training_history (result_version_id);

-- Status history of every job: one row at creation (from_status NULL) and one per transition.
CREATE TABLE job_events (
    id          bigserial PRIMARY KEY,
    job_id      uuid NOT NULL REFERENCES model_training_history (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    from_status text,
    to_status   text,
    attempt     integer,
    worker_id   text,
    message     text,
    CONSTRAINT job_events_from_status_check
        CHECK (from_status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    CONSTRAINT job_events_to_status_check
        CHECK (to_status IN ('pending', 'running', 'completed', 'failed', 'cancelled'))
);

CREATE INDEX ix_job_events_job ON job_events (job_id, id);
