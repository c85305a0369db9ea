"""scripts/import-history.sh: the Python system's history moves into a migrated database —
stuck jobs arrive cancelled, forecast becomes forecast_arima, piled-up open alerts leave one
open, a running A/B test is cancelled, a rerun imports nothing, and a row the new constraints
refuse leaves the new database untouched."""
import os
import subprocess
import uuid

import psycopg2

from conftest import ROOT, pg_query, run_ctl
from legacy_system import HVAC, PUMP, create_legacy_db, drop_db

SCRIPT = os.path.join(ROOT, "scripts", "import-history.sh")


def run_import(new_dsn, old_dsn):
    env = dict(os.environ, ENMS_PG_DSN=new_dsn)
    return subprocess.run([SCRIPT, old_dsn], env=env, capture_output=True, text=True, timeout=120)


def test_history_moves_over_with_the_documented_changes(admin_dsn, migrated_db, bin_dir):
    run_ctl(bin_dir, migrated_db, "seed", "--days", "30", check=True)
    old_name = "legacy_" + uuid.uuid4().hex[:8]
    old = create_legacy_db(admin_dsn, old_name)
    try:
        r = run_import(migrated_db, old)
        assert r.returncode == 0, r.stderr
        assert r.stderr == "", r.stderr
        assert r.stdout.split("\n")[:5] == [
            "machines imported: 1", "training jobs imported: 8", "evaluations imported: 1",
            "A/B tests imported: 1", "alerts imported: 3"], r.stdout

        jobs = dict((row[0], row[1:]) for row in pg_query(migrated_db, """
            SELECT id::text, model_type, training_status, error_message, progress,
                   metadata->>'old_status', feature_names
            FROM model_training_history WHERE metadata ? 'imported_from'"""))
        assert len(jobs) == 8
        stuck = [v for k, v in jobs.items() if k.endswith(tuple("123456"))]
        assert {v[1] for v in stuck} == {"cancelled"}
        assert all(v[4] == "pending" and "never ran" in v[2] for v in stuck)
        assert stuck[0][5] == ["production_count", "outdoor_temp"]
        done = jobs["a0000000-0000-0000-0000-000000000007"]
        assert done[:2] == ("forecast_arima", "completed") and done[3] == 100
        failed = jobs["a0000000-0000-0000-0000-000000000008"]
        assert failed[1:3] == ("failed", "Job timed out - exceeded 30 minute limit")
        # Nothing imported is active: a trigger for the same machine and type is accepted.
        assert pg_query(migrated_db, "SELECT count(*) FROM model_training_history "
                        "WHERE training_status IN ('pending', 'running')") == [(0,)]
        # The job history records each imported row's arrival.
        assert pg_query(migrated_db, "SELECT count(*) FROM job_events e JOIN model_training_history h "
                        "ON h.id = e.job_id WHERE h.metadata ? 'imported_from'") == [(8,)]

        assert pg_query(migrated_db, "SELECT name, type FROM machines WHERE id = %s", (PUMP,)) == \
            [("Legacy-Pump-9", "pump")]
        # The demo machine that exists already keeps its row.
        assert pg_query(migrated_db, "SELECT count(*) FROM machines WHERE id = %s", (HVAC,)) == [(1,)]

        ev = pg_query(migrated_db, "SELECT mae, metrics->>'mae', created_by FROM model_performance_metrics "
                      "WHERE metadata ? 'imported_from'")
        assert ev == [(0.0, "0.0", "dashboard")]

        ab = pg_query(migrated_db, "SELECT test_status, winner_model_id::text, decision_notes FROM model_ab_tests")
        assert ab[0][0] == "cancelled" and ab[0][1] == "b0000000-0000-0000-0000-000000000002"
        assert "status running" in ab[0][2]

        alerts = dict(pg_query(migrated_db, "SELECT id::text, (is_resolved, resolution_action, resolved_by)::text "
                               "FROM model_alerts"))
        assert alerts == {"f0000000-0000-0000-0000-000000000001": "(t,resolved,import)",
                          "f0000000-0000-0000-0000-000000000002": "(f,,)",
                          "f0000000-0000-0000-0000-000000000003": "(t,acknowledged,)"}
        assert pg_query(migrated_db, "SELECT count(*) FROM information_schema.schemata "
                        "WHERE schema_name = 'legacy_import'") == [(0,)]

        # A rerun finds every id present and imports nothing.
        r = run_import(migrated_db, old)
        assert r.returncode == 0, r.stderr
        assert r.stdout.count("imported: 0") == 5, r.stdout
    finally:
        drop_db(admin_dsn, old_name)


def test_a_refused_row_imports_nothing(admin_dsn, migrated_db):
    old_name = "legacy_" + uuid.uuid4().hex[:8]
    old = create_legacy_db(admin_dsn, old_name)
    try:
        with psycopg2.connect(old) as conn, conn.cursor() as cur:
            # A negative RMSE: the new table's check refuses it.
            cur.execute("UPDATE model_performance_metrics SET rmse = -1")
        conn.close()
        r = run_import(migrated_db, old)
        assert r.returncode != 0
        assert "model_performance_metrics_errors_check" in r.stderr, r.stderr
        assert pg_query(migrated_db, "SELECT count(*) FROM model_training_history") == [(0,)]
        assert pg_query(migrated_db, "SELECT count(*) FROM machines") == [(0,)]
        r = run_import(migrated_db, "")
        assert r.returncode == 2 and "usage" in r.stderr
    finally:
        drop_db(admin_dsn, old_name)
