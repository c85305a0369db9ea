-- 001_core.sql: the factory side of the data: machines, their hourly energy readings, labelled
-- anomaly intervals, and the ground truth of generated demo data. Everything the models are
-- trained on lives here; nothing about jobs or models does.

CREATE TABLE machines (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name           text NOT NULL,
    type           text NOT NULL,
    location       text,
    rated_power_kw double precision,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT machines_name_key UNIQUE (name),
    CONSTRAINT machines_name_nonempty CHECK (length(btrim(name)) > 0),
    CONSTRAINT machines_type_check CHECK (type IN ('compressor', 'hvac', 'motor', 'pump',
                                                   'injection_molding', 'conveyor', 'boiler',
                                                   'other')),
    CONSTRAINT machines_rated_power_check
        CHECK (rated_power_kw > 0 AND rated_power_kw < 'Infinity'::double precision)
);

-- One row per machine and hour. ts is the start of the hour the energy was consumed in. The
-- alignment check is to the quarter hour rather than the UTC hour so that sites in zones such
-- as UTC+05:30 or +05:45 can store their local hours. Comparisons with 'Infinity' also reject
-- NaN, which PostgreSQL sorts above every number.
CREATE TABLE energy_readings (
    machine_id       uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    ts               timestamptz NOT NULL,
    energy_kwh       double precision NOT NULL,
    production_count double precision,
    outdoor_temp_c   double precision,
    PRIMARY KEY (machine_id, ts),
    CONSTRAINT energy_readings_ts_aligned CHECK (extract(epoch FROM ts) % 900 = 0),
    CONSTRAINT energy_readings_energy_check
        CHECK (energy_kwh >= 0 AND energy_kwh < 'Infinity'::double precision),
    CONSTRAINT energy_readings_production_check
        CHECK (production_count >= 0 AND production_count < 'Infinity'::double precision),
    CONSTRAINT energy_readings_outdoor_temp_check CHECK (outdoor_temp_c BETWEEN -90 AND 70)
);

-- Intervals [ts_start, ts_end) known to be abnormal (or, with is_anomaly = false, flagged by a
-- detector and rejected by a user). The anomaly model is scored against these.
CREATE TABLE anomaly_labels (
    id         bigserial PRIMARY KEY,
    machine_id uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    ts_start   timestamptz NOT NULL,
    ts_end     timestamptz NOT NULL,
    kind       text NOT NULL,
    source     text NOT NULL DEFAULT 'user',
    is_anomaly boolean NOT NULL DEFAULT true,
    notes      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT anomaly_labels_interval_check CHECK (ts_end > ts_start),
    CONSTRAINT anomaly_labels_kind_check
        CHECK (kind IN ('spike', 'level_shift', 'stuck_meter', 'dropout', 'other')),
    CONSTRAINT anomaly_labels_source_check CHECK (source IN ('injected', 'user', 'detector'))
);

CREATE INDEX ix_anomaly_labels_machine_start ON anomaly_labels (machine_id, ts_start);

-- What `enmsctl seed` put into a machine's synthetic readings (true baseline coefficients,
-- seasonal shape, injected anomalies), so tests can check that models recover it.
CREATE TABLE demo_truth (
    machine_id   uuid PRIMARY KEY REFERENCES machines (id) ON DELETE CASCADE,
    seed         bigint NOT NULL,
    generated_at timestamptz NOT NULL DEFAULT now(),
    truth        jsonb NOT NULL
);
