"""`enmsctl migrate` and the schema it builds.

Covers: applying twice changes nothing, the seed system's tables and views keep their
columns, the one-active-job index, edits to applied files and broken files are caught
(and roll back completely), concurrent migrators, and an unreachable database.
"""
import os
import re
import shutil
import subprocess

import psycopg2
import pytest

from conftest import ROOT, free_port, pg_query, run_ctl

SCHEMA_DIR = os.path.join(ROOT, "schema")
MIGRATION_FILES = sorted(f for f in os.listdir(SCHEMA_DIR) if f.endswith(".sql"))

MACHINE = "c0000000-0000-0000-0000-000000000001"

# Columns of the seed system's tables and views that clients and reports used
# (reference/original-system.md). The new schema may add columns, never drop these.
SEED_COLUMNS = {
    "model_training_history": [
        "id", "model_id", "model_type", "model_version", "machine_id", "training_start",
        "training_end", "training_duration_seconds", "training_status", "training_data_start",
        "training_data_end", "training_samples", "hyperparameters", "feature_names",
        "training_metrics", "validation_metrics", "error_message", "trigger_type",
        "triggered_by", "created_at", "metadata",
        # added for the queue
        "progress", "stage", "attempts", "worker_id", "heartbeat_at", "queue_name", "reason",
        "params", "result_version_id", "cancel_requested_at", "updated_at",
    ],
    "model_performance_metrics": [
        "id", "model_id", "model_type", "machine_id", "model_version", "evaluation_date",
        "evaluation_start", "evaluation_end", "sample_count", "metrics", "r_squared", "rmse",
        "mae", "mape", "precision_score", "recall_score", "f1_score", "true_positives",
        "false_positives", "true_negatives", "false_negatives", "drift_detected",
        "drift_score", "drift_threshold", "data_completeness", "outlier_percentage",
        "evaluation_notes", "created_at", "created_by", "metadata",
    ],
    "model_ab_tests": [
        "id", "test_name", "model_type", "machine_id", "model_a_id", "model_a_version",
        "model_b_id", "model_b_version", "test_start", "test_end", "test_status",
        "traffic_split_a", "traffic_split_b", "model_a_metrics", "model_b_metrics",
        "winner_model_id", "winner_declared_at", "statistical_significance",
        "confidence_level", "decision", "decision_notes", "decided_by", "decided_at",
    ],
    "model_alerts": [
        "id", "alert_type", "severity", "model_id", "model_type", "model_version",
        "machine_id", "alert_timestamp", "alert_message", "alert_details",
        "current_metric_value", "threshold_value", "baseline_metric_value", "is_resolved",
        "resolved_at", "resolution_action", "resolved_by", "resolution_notes",
        "auto_action_taken", "auto_action_type", "auto_action_result",
    ],
    "v_latest_model_performance": [
        "id", "model_id", "model_type", "machine_id", "machine_name", "machine_type",
        "model_version", "evaluation_date", "r_squared", "rmse", "mae", "mape",
        "drift_detected", "drift_score", "sample_count", "data_completeness",
    ],
    "v_active_ab_tests": [
        "id", "test_name", "model_type", "machine_id", "model_a_id", "model_b_id",
        "test_start", "test_end", "test_status", "hours_running",
    ],
    "v_unresolved_model_alerts": [
        "id", "alert_type", "severity", "model_type", "machine_id", "machine_name",
        "alert_timestamp", "alert_message", "is_resolved", "auto_action_taken", "hours_open",
    ],
    "machines": ["id", "name", "type", "location", "rated_power_kw", "created_at"],
    "energy_readings": ["machine_id", "ts", "energy_kwh", "production_count", "outdoor_temp_c"],
    "anomaly_labels": ["id", "machine_id", "ts_start", "ts_end", "kind", "source",
                       "is_anomaly", "notes", "created_at"],
    "demo_truth": ["machine_id", "seed", "generated_at", "truth"],
    "model_versions": ["id", "machine_id", "model_type", "version", "training_job_id",
                       "created_at", "artifact", "metrics", "is_active", "activated_at",
                       "notes"],
    "job_events": ["id", "job_id", "at", "from_status", "to_status", "attempt", "worker_id",
                   "message"],
    "schema_migrations": ["version", "name", "checksum", "applied_at"],
}

VIEWS = ["v_latest_model_performance", "v_active_ab_tests", "v_unresolved_model_alerts"]


def migrate(bin_dir, dsn, *args, schema_dir=SCHEMA_DIR, check=False):
    return run_ctl(bin_dir, dsn, "migrate", *args, check=check,
                   env_extra={"ENMS_SCHEMA_DIR": str(schema_dir)})


def schema_dump(dsn):
    """Everything a migration can change, as one deterministic text."""
    parts = []
    queries = {
        "columns": """
            SELECT table_name, ordinal_position, column_name, data_type, udt_name,
                   is_nullable, coalesce(column_default, '')
            FROM information_schema.columns WHERE table_schema = 'public'
            ORDER BY table_name, ordinal_position""",
        "constraints": """
            SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
            FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
            WHERE n.nspname = 'public' ORDER BY 1, 2""",
        "indexes": """
            SELECT tablename, indexname, indexdef FROM pg_indexes
            WHERE schemaname = 'public' ORDER BY 1, 2""",
        "views": """
            SELECT viewname, definition FROM pg_views
            WHERE schemaname = 'public' ORDER BY 1""",
        "triggers": """
            SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger
            WHERE NOT tgisinternal ORDER BY 1, 2""",
        "functions": """
            SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p
            JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'public' ORDER BY 1""",
        "migrations": "SELECT version, name, checksum, applied_at FROM schema_migrations "
                      "ORDER BY version",
    }
    for title, sql in queries.items():
        parts.append(f"== {title}")
        parts.extend(repr(row) for row in pg_query(dsn, sql))
    return "\n".join(parts)


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for byte in data:
        h ^= byte
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"fnv1a64:{h:016x}"


def columns_of(dsn, relation):
    rows = pg_query(dsn, "SELECT column_name FROM information_schema.columns "
                         "WHERE table_schema = 'public' AND table_name = %s", (relation,))
    return {r[0] for r in rows}


def applied_versions(dsn):
    if pg_query(dsn, "SELECT to_regclass('schema_migrations')")[0][0] is None:
        return []
    return [r[0] for r in pg_query(dsn, "SELECT name FROM schema_migrations ORDER BY version")]


def execute(dsn, sql, params=None):
    """Runs one statement in its own transaction; raises psycopg2 errors unchanged."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


@pytest.fixture
def schema_db(fresh_db, bin_dir):
    migrate(bin_dir, fresh_db, check=True)
    execute(fresh_db, "INSERT INTO machines (id, name, type, rated_power_kw) "
                      "VALUES (%s, 'Compressor-1', 'compressor', 55)", (MACHINE,))
    return fresh_db


@pytest.fixture
def schema_copy(tmp_path):
    dst = tmp_path / "schema"
    shutil.copytree(SCHEMA_DIR, dst)
    return dst


def test_migration_files_are_well_formed():
    assert MIGRATION_FILES, "no migrations in schema/"
    numbers = [f[:3] for f in MIGRATION_FILES]
    assert len(numbers) == len(set(numbers))
    tx_control = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|END|START\s+TRANSACTION)\s*;",
                            re.IGNORECASE | re.MULTILINE)
    for name in MIGRATION_FILES:
        assert re.fullmatch(r"[0-9]{3}_[a-z0-9_]+\.sql", name), name
        with open(os.path.join(SCHEMA_DIR, name), encoding="utf-8") as f:
            text = f.read()
        assert text.startswith("-- "), f"{name} must open with a comment saying what it adds"
        # Function bodies ($$ ... $$) may hold PL/pgSQL BEGIN/END blocks.
        outside_bodies = re.sub(r"\$([A-Za-z_]*)\$.*?\$\1\$", "", text, flags=re.DOTALL)
        assert not tx_control.search(outside_bodies), f"{name} must not control transactions"


def test_migrate_applies_all_then_nothing(fresh_db, bin_dir):
    first = migrate(bin_dir, fresh_db, check=True)
    for name in MIGRATION_FILES:
        assert f"applied {name}\n" in first.stdout
    assert (f"schema up to date ({len(MIGRATION_FILES)} migrations, "
            f"{len(MIGRATION_FILES)} applied now)") in first.stdout
    dump = schema_dump(fresh_db)

    second = migrate(bin_dir, fresh_db, check=True)
    assert not [line for line in second.stdout.splitlines() if line.startswith("applied ")]
    assert f"({len(MIGRATION_FILES)} migrations, 0 applied now)" in second.stdout
    assert schema_dump(fresh_db) == dump

    assert applied_versions(fresh_db) == MIGRATION_FILES
    for name, checksum in pg_query(fresh_db, "SELECT name, checksum FROM schema_migrations"):
        with open(os.path.join(SCHEMA_DIR, name), "rb") as f:
            assert checksum == fnv1a64(f.read()), name


def test_status_lists_and_changes_nothing(fresh_db, bin_dir):
    before = migrate(bin_dir, fresh_db, "--status", check=True)
    for name in MIGRATION_FILES:
        assert re.search(rf"^{re.escape(name)}\s+pending$", before.stdout, re.MULTILINE)
    assert pg_query(fresh_db, "SELECT to_regclass('schema_migrations')")[0][0] is None
    assert pg_query(fresh_db, "SELECT to_regclass('machines')")[0][0] is None

    migrate(bin_dir, fresh_db, check=True)
    after = migrate(bin_dir, fresh_db, "--status", check=True)
    for name in MIGRATION_FILES:
        assert re.search(rf"^{re.escape(name)}\s+applied ", after.stdout, re.MULTILINE)


def test_seed_tables_and_views_keep_their_columns(schema_db):
    tables = {r[0] for r in pg_query(schema_db, "SELECT table_name FROM information_schema."
                                                "tables WHERE table_schema = 'public' AND "
                                                "table_type = 'BASE TABLE'")}
    views = {r[0] for r in pg_query(schema_db, "SELECT viewname FROM pg_views "
                                               "WHERE schemaname = 'public'")}
    assert set(VIEWS) <= views
    for relation, expected in SEED_COLUMNS.items():
        assert relation in (views if relation in VIEWS else tables), relation
        missing = set(expected) - columns_of(schema_db, relation)
        assert not missing, f"{relation} lacks {sorted(missing)}"


def insert_job(dsn, model_type="baseline", status="pending"):
    return execute(dsn, "INSERT INTO model_training_history (model_type, machine_id, "
                        "training_status) VALUES (%s, %s, %s) RETURNING id",
                   (model_type, MACHINE, status))[0][0]


def test_one_active_job_per_machine_and_model_type(schema_db):
    first = insert_job(schema_db)

    for status in ("pending", "running"):
        with pytest.raises(psycopg2.IntegrityError) as info:
            insert_job(schema_db, status=status)
        assert info.value.pgcode == "23505"
        assert info.value.diag.constraint_name == "uq_training_active_job"

    # Another model type for the same machine is independent; probe jobs are exempt.
    insert_job(schema_db, model_type="anomaly")
    insert_job(schema_db, model_type="probe")
    insert_job(schema_db, model_type="probe")
    insert_job(schema_db, model_type="probe", status="running")

    # Finished jobs do not count: once the first completes a new one may start.
    execute(schema_db, "UPDATE model_training_history SET training_status = 'completed' "
                       "WHERE id = %s", (first,))
    second = insert_job(schema_db)
    assert second != first
    execute(schema_db, "UPDATE model_training_history SET training_status = 'failed' "
                       "WHERE id = %s", (second,))
    insert_job(schema_db, status="running")

    # A failed job cannot be put back to pending while another one is active.
    with pytest.raises(psycopg2.IntegrityError) as info:
        execute(schema_db, "UPDATE model_training_history SET training_status = 'pending' "
                           "WHERE id = %s", (second,))
    assert info.value.pgcode == "23505"


def test_enumerations_and_ranges_are_checked(schema_db):
    bad = [
        ("INSERT INTO model_training_history (model_type, machine_id) VALUES ('arima', %s)",
         (MACHINE,)),
        ("INSERT INTO model_training_history (model_type, machine_id, training_status) "
         "VALUES ('baseline', %s, 'done')", (MACHINE,)),
        ("INSERT INTO model_training_history (model_type, machine_id, progress) "
         "VALUES ('probe', %s, 101)", (MACHINE,)),
        ("INSERT INTO energy_readings VALUES (%s, '2025-01-01 00:00Z', 'NaN', NULL, NULL)",
         (MACHINE,)),
        ("INSERT INTO energy_readings VALUES (%s, '2025-01-01 00:00Z', -1, NULL, NULL)",
         (MACHINE,)),
        ("INSERT INTO energy_readings VALUES (%s, '2025-01-01 00:00Z', 1, NULL, 71)",
         (MACHINE,)),
        ("INSERT INTO machines (name, type) VALUES ('Lathe-1', 'lathe')", None),
        ("INSERT INTO model_alerts (alert_type, severity, alert_message) "
         "VALUES ('drift_detected', 'high', 'x')", None),
        ("INSERT INTO anomaly_labels (machine_id, ts_start, ts_end, kind) "
         "VALUES (%s, '2025-01-02Z', '2025-01-01Z', 'spike')", (MACHINE,)),
    ]
    for sql, params in bad:
        with pytest.raises(psycopg2.IntegrityError) as info:
            execute(schema_db, sql, params)
        assert info.value.pgcode == "23514", sql  # check_violation
    execute(schema_db, "INSERT INTO energy_readings VALUES (%s, '2025-01-01 00:00Z', 0, 0, -5)",
            (MACHINE,))


def test_one_active_model_version(schema_db):
    sql = ("INSERT INTO model_versions (machine_id, model_type, version, artifact, is_active) "
           "VALUES (%s, 'baseline', %s, '{}', %s)")
    execute(schema_db, sql, (MACHINE, 1, True))
    execute(schema_db, sql, (MACHINE, 2, False))
    with pytest.raises(psycopg2.IntegrityError) as info:
        execute(schema_db, sql, (MACHINE, 3, True))
    assert info.value.diag.constraint_name == "uq_model_versions_active"
    with pytest.raises(psycopg2.IntegrityError):
        execute(schema_db, sql, (MACHINE, 2, False))


def test_views_answer_as_the_seed_did(schema_db):
    execute(schema_db, """
        INSERT INTO model_alerts (alert_type, severity, machine_id, alert_message,
                                  alert_timestamp, is_resolved, resolved_at) VALUES
          ('drift_detected', 'normal', %(m)s, 'newest normal', now() - interval '1 hour',
           false, NULL),
          ('training_failed', 'critical', %(m)s, 'old critical', now() - interval '5 hours',
           false, NULL),
          ('performance_degradation', 'warning', %(m)s, 'warning',
           now() - interval '2 hours', false, NULL),
          ('drift_detected', 'critical', %(m)s, 'resolved', now(), true, now())""",
            {"m": MACHINE})
    rows = pg_query(schema_db, "SELECT alert_message, machine_name, hours_open "
                               "FROM v_unresolved_model_alerts")
    assert [r[0] for r in rows] == ["old critical", "warning", "newest normal"]
    assert rows[0][1] == "Compressor-1"
    assert 4.9 < rows[0][2] < 5.1
    # Open monitoring alerts are one per type, machine and model type (migration 006).
    with pytest.raises(psycopg2.IntegrityError) as info:
        execute(schema_db, "INSERT INTO model_alerts (alert_type, machine_id, alert_message) "
                           "VALUES ('drift_detected', %s, 'again')", (MACHINE,))
    assert info.value.diag.constraint_name == "uq_model_alerts_open"

    execute(schema_db, """
        INSERT INTO model_performance_metrics (model_type, machine_id, evaluation_date,
                                               r_squared) VALUES
          ('baseline', %(m)s, now() - interval '2 days', 0.9),
          ('baseline', %(m)s, now() - interval '1 day', 0.0),
          ('anomaly', %(m)s, now() - interval '3 days', 0.5)""", {"m": MACHINE})
    rows = pg_query(schema_db, "SELECT model_type, r_squared, machine_name, machine_type "
                               "FROM v_latest_model_performance ORDER BY model_type")
    assert rows == [("anomaly", 0.5, "Compressor-1", "compressor"),
                    ("baseline", 0.0, "Compressor-1", "compressor")]

    execute(schema_db, """
        INSERT INTO model_ab_tests (test_name, model_type, machine_id, model_a_id, model_b_id,
                                    test_start, test_end, test_status) VALUES
          ('running', 'baseline', %(m)s, gen_random_uuid(), gen_random_uuid(),
           now() - interval '2 hours', now() + interval '22 hours', 'running'),
          ('done', 'baseline', %(m)s, gen_random_uuid(), gen_random_uuid(),
           now() - interval '30 hours', now() - interval '6 hours', 'completed')""",
            {"m": MACHINE})
    rows = pg_query(schema_db, "SELECT test_name, hours_running FROM v_active_ab_tests")
    assert len(rows) == 1 and rows[0][0] == "running"
    assert 1.9 < rows[0][1] < 2.1


def test_changed_migration_is_refused(fresh_db, bin_dir, schema_copy):
    migrate(bin_dir, fresh_db, schema_dir=schema_copy, check=True)
    first = schema_copy / MIGRATION_FILES[0]
    first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")

    proc = migrate(bin_dir, fresh_db, schema_dir=schema_copy)
    assert proc.returncode != 0
    assert f"migration {MIGRATION_FILES[0]} was changed after it was applied" in proc.stderr

    status = migrate(bin_dir, fresh_db, "--status", schema_dir=schema_copy)
    assert status.returncode != 0
    assert "CHANGED" in status.stdout


def test_broken_migration_rolls_back_completely(fresh_db, bin_dir, schema_copy):
    (schema_copy / "999_broken.sql").write_text(
        "-- 999_broken.sql: half of it works, then it fails.\n"
        "CREATE TABLE half_done (id integer);\n"
        "INSERT INTO half_done VALUES (1);\n"
        "ALTER TABLE machines ADD COLUMN half_done_col integer;\n"
        "SELECT no_such_column FROM machines;\n")
    proc = migrate(bin_dir, fresh_db, schema_dir=schema_copy)
    assert proc.returncode != 0
    assert "migration 999_broken.sql failed: " in proc.stderr
    assert 'column "no_such_column" does not exist' in proc.stderr
    assert "(line 5)" in proc.stderr

    # Everything before the broken file is applied and recorded; nothing of it is.
    assert applied_versions(fresh_db) == MIGRATION_FILES
    assert pg_query(fresh_db, "SELECT to_regclass('half_done')")[0][0] is None
    assert "half_done_col" not in columns_of(fresh_db, "machines")

    # Fixing the file lets the next run apply it.
    (schema_copy / "999_broken.sql").write_text(
        "-- 999_broken.sql: fixed.\nCREATE TABLE half_done (id integer);\n")
    proc = migrate(bin_dir, fresh_db, schema_dir=schema_copy, check=True)
    assert "applied 999_broken.sql" in proc.stdout
    assert "1 applied now" in proc.stdout


@pytest.mark.parametrize("bad_name", ["1_short.sql", "002_Mixed.sql", "002-dash.sql",
                                      "abc_core.sql"])
def test_misnamed_migration_is_refused(fresh_db, bin_dir, schema_copy, bad_name):
    (schema_copy / bad_name).write_text("SELECT 1;\n")
    proc = migrate(bin_dir, fresh_db, schema_dir=schema_copy)
    assert proc.returncode != 0
    assert bad_name in proc.stderr
    assert applied_versions(fresh_db) == []


def test_duplicate_number_is_refused(fresh_db, bin_dir, schema_copy):
    number = MIGRATION_FILES[0][:3]
    (schema_copy / f"{number}_duplicate.sql").write_text("-- dup\nSELECT 1;\n")
    proc = migrate(bin_dir, fresh_db, schema_dir=schema_copy)
    assert proc.returncode != 0
    assert f"share the number {number}" in proc.stderr
    assert applied_versions(fresh_db) == []


def test_oversized_migration_is_refused(fresh_db, bin_dir, schema_copy):
    (schema_copy / "999_huge.sql").write_text("-- huge\n" + "-- padding\n" * 120000)
    proc = migrate(bin_dir, fresh_db, schema_dir=schema_copy)
    assert proc.returncode != 0
    assert "999_huge.sql is larger than" in proc.stderr
    assert applied_versions(fresh_db) == []


def test_concurrent_migrators_apply_each_file_once(fresh_db, bin_dir):
    env = dict(os.environ, ENMS_PG_DSN=fresh_db, ENMS_SCHEMA_DIR=SCHEMA_DIR)
    procs = [subprocess.Popen([os.path.join(bin_dir, "enmsctl"), "migrate"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    applied = [line for out, _ in outputs for line in out.splitlines()
               if line.startswith("applied ")]
    assert sorted(applied) == [f"applied {name}" for name in MIGRATION_FILES]
    assert applied_versions(fresh_db) == MIGRATION_FILES


def test_unreachable_database_is_a_clear_error(bin_dir):
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    proc = run_ctl(bin_dir, dsn, "migrate", timeout=60,
                   env_extra={"ENMS_SCHEMA_DIR": SCHEMA_DIR, "ENMS_CONNECT_TIMEOUT_MS": "2000"})
    assert proc.returncode != 0
    assert "cannot connect to the database" in proc.stderr
    assert proc.stdout == ""


def test_missing_schema_folder_is_a_clear_error(fresh_db, bin_dir, tmp_path):
    proc = migrate(bin_dir, fresh_db, schema_dir=tmp_path / "nowhere")
    assert proc.returncode != 0
    assert "cannot open schema folder" in proc.stderr
