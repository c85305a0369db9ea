"""POST /api/v1/model-performance/metrics/record and GET .../metrics/trend,
with performance drift, its alert (one open alert per machine and model type)
and the automatic retrain (once per cooldown).

Model versions are inserted directly with realistic validation metrics (the
shapes worker/train_models.c writes), so each test controls the reference
values; expected numbers are computed here from the inputs, never read from
the code under test."""
import concurrent.futures
import datetime
import json
import math
import random
import uuid

import psycopg2
import pytest
import redis as redis_lib
import requests

from conftest import pg_query
from pipeline import add_machine, pipeline_env, start_api

PERF = "/api/v1/model-performance"
W_START = "2024-01-01T00:00:00Z"
W_END = "2024-01-04T00:00:00Z"  # 72 hours

BASELINE_VALIDATION = {"kind": "holdout", "sample_count": 60, "r_squared": 0.9, "rmse": 2.0,
                       "cv_rmse_pct": 10.0, "nmbe_pct": 0.5, "meets_limits": True}
FORECAST_VALIDATION = {"kind": "holdout", "sample_count": 168, "mape": 5.0, "rmse": 1.5,
                       "mae": 1.1, "mase": 0.8, "coverage_80": 0.79, "coverage_95": 0.94}
ANOMALY_VALIDATION = {"kind": "holdout", "detector": "iforest", "sample_count": 720,
                      "anomaly_rate": 0.02, "outlier_percentage": 2.0, "precision": None,
                      "recall": None, "f1": None}


# ---- helpers -----------------------------------------------------------------------------

def execute(dsn, sql, params=None):
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone() if cur.description else None
    conn.close()
    return row


def add_version(dsn, machine, model_type, validation=None, metrics=None, active=True):
    """A completed training job with validation metrics and its model version."""
    job = None
    if validation is not None:
        job = execute(dsn, "INSERT INTO model_training_history (model_type, machine_id, "
                      "training_status, validation_metrics, training_start, training_end) "
                      "VALUES (%s, %s, 'completed', %s, now(), now()) RETURNING id::text",
                      (model_type, machine, json.dumps(validation)))[0]
    if active:
        execute(dsn, "UPDATE model_versions SET is_active = false WHERE machine_id = %s "
                "AND model_type = %s", (machine, model_type))
    return execute(dsn, "INSERT INTO model_versions (machine_id, model_type, version, "
                   "training_job_id, artifact, metrics, is_active, activated_at) "
                   "SELECT %s, %s, COALESCE(MAX(version), 0) + 1, %s, '{}', %s, %s, now() "
                   "FROM model_versions WHERE machine_id = %s AND model_type = %s "
                   "RETURNING id::text",
                   (machine, model_type, job, json.dumps(metrics or {}), active, machine,
                    model_type))[0]


def add_readings(dsn, machine, start, hours):
    execute(dsn, "INSERT INTO energy_readings (machine_id, ts, energy_kwh) "
            "SELECT %s, %s::timestamptz + make_interval(hours => h), 10 + h %% 7 "
            "FROM generate_series(0, %s - 1) AS h", (machine, start, hours))


def counts(dsn):
    return pg_query(dsn, "SELECT (SELECT count(*) FROM model_performance_metrics), "
                    "(SELECT count(*) FROM model_alerts), "
                    "(SELECT count(*) FROM model_training_history)")[0]


def record(base, query=None, body=None, raw=None):
    """Old clients: query and a metrics body; new clients: body with "metrics"."""
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    headers = {"Content-Type": "application/json"} if data is not None else {}
    return requests.post(f"{base}{PERF}/metrics/record", params=query, data=data,
                         headers=headers, timeout=30)


def trend(base, **query):
    return requests.get(f"{base}{PERF}/metrics/trend", params=query, timeout=30)


def old_query(machine, model_type, model_id=None, start=W_START, end=W_END):
    q = {"model_type": model_type, "machine_id": machine, "evaluation_start": start,
         "evaluation_end": end}
    if model_id:
        q["model_id"] = model_id
    return q


def drift_jobs(dsn, machine, model_type):
    return pg_query(dsn, "SELECT id::text, training_status, triggered_by, reason FROM "
                    "model_training_history WHERE machine_id = %s AND model_type = %s "
                    "AND trigger_type = 'drift_detected' ORDER BY created_at",
                    (machine, model_type))


def open_alerts(dsn, machine):
    return pg_query(dsn, "SELECT id::text, severity, alert_details, auto_action_taken, "
                    "auto_action_type, auto_action_result, model_type FROM model_alerts "
                    "WHERE machine_id = %s AND NOT is_resolved AND alert_type = 'drift_detected'",
                    (machine,))


def ols(xs, ys):
    """Least-squares slope, its t statistic and the mean of ys (reference values)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    icpt = my - slope * mx
    sse = sum((y - icpt - slope * x) ** 2 for x, y in zip(xs, ys))
    se = math.sqrt(sse / (n - 2) / sxx)
    return slope, slope / se, my


def insert_series(dsn, machine, model_type, column, values, start="2023-03-01T00:00:00Z"):
    """One evaluation per day with `column` (a named column) set; window end = day."""
    assert column in ("r_squared", "mape", "rmse")
    for d, v in enumerate(values):
        execute(dsn, "INSERT INTO model_performance_metrics (model_type, machine_id, "
                "evaluation_start, evaluation_end, evaluation_date, metrics, " + column + ") "
                "VALUES (%s, %s, %s::timestamptz + make_interval(days => %s - 1), "
                "%s::timestamptz + make_interval(days => %s), "
                "%s::timestamptz + make_interval(days => %s), %s, %s)",
                (model_type, machine, start, d, start, d, start, d, json.dumps({column: v}), v))


@pytest.fixture
def stack(migrated_db, redis_url, spawn):
    """A migrated database and an API on it; start(**env) starts another API."""
    class Stack:
        dsn = migrated_db

        def start(self, **extra):
            env = pipeline_env(migrated_db, redis_url, **extra)
            api = start_api(spawn, env)
            api.env = env
            return api

    s = Stack()
    s.api = s.start()
    s.base = s.api.base
    return s


# ---- record: success paths ---------------------------------------------------------------

def test_record_old_client_baseline_active_version(stack):
    machine = add_machine(stack.dsn)
    version = add_version(stack.dsn, machine, "baseline", BASELINE_VALIDATION)
    add_readings(stack.dsn, machine, W_START, 48)  # 48 of the window's 72 hours
    metrics = {"r_squared": 0.88, "rmse": 2.1, "mae": 0.0, "cv_rmse_pct": 10.5}
    r = record(stack.base, old_query(machine, "baseline"), metrics)
    assert r.status_code == 201, r.text
    a = r.json()
    assert a["model_id"] == version and a["model_version"] == 1
    assert a["drift_detected"] is False
    assert a["main_metric"] == "cv_rmse_pct"
    assert a["validation_value"] == 10.0 and a["main_metric_value"] == 10.5
    assert a["drift_score"] == pytest.approx((10.5 - 10.0) / 10.0)
    assert a["threshold"] == 0.5
    assert a["sample_count"] == 48
    assert a["data_completeness"] == pytest.approx(100 * 48 / 72)
    assert a["alert_id"] is None and a["retrain_triggered"] is False
    assert "No performance drift" in a["recommendation"]
    row = pg_query(stack.dsn, "SELECT model_id::text, model_version, r_squared, rmse, mae, "
                   "sample_count, data_completeness, drift_detected, drift_score, metrics, "
                   "evaluation_date = evaluation_end, created_by FROM model_performance_metrics "
                   "WHERE id = %s", (a["metric_id"],))[0]
    assert row[0] == version and row[1] == 1
    assert row[2:5] == (0.88, 2.1, 0.0)  # mae 0.0 stored as 0.0, not NULL
    assert row[5] == 48 and row[6] == pytest.approx(66.6666667)
    assert row[7] is False and row[8] == pytest.approx(0.05)
    assert row[9] == metrics and row[10] is True and row[11] == "api"


def test_record_new_client_forecast_by_version_id(stack):
    machine = add_machine(stack.dsn)
    old = add_version(stack.dsn, machine, "forecast_arima", FORECAST_VALIDATION)
    add_version(stack.dsn, machine, "forecast_arima", dict(FORECAST_VALIDATION, mape=2.0))
    body = {"model_id": old, "model_type": "forecast_arima", "machine_id": machine,
            "evaluation_start": "2024-01-01T00:00:00+01:00", "evaluation_end": W_END,
            "metrics": {"mape": 6.0, "rmse": 1.6, "mase": 0.9}, "notes": "weekly check"}
    r = record(stack.base, body=body)
    assert r.status_code == 201, r.text
    a = r.json()
    # The older, inactive version is the one judged: 6 against its 5, not the active 2.
    assert a["model_id"] == old and a["model_version"] == 1
    assert a["main_metric"] == "mape" and a["validation_value"] == 5.0
    assert a["drift_score"] == pytest.approx(0.2) and a["drift_detected"] is False
    assert a["evaluation_start"] == "2023-12-31T23:00:00.000000Z"
    assert a["sample_count"] == 0 and a["data_completeness"] == 0
    row = pg_query(stack.dsn, "SELECT mape, rmse, evaluation_notes, metrics FROM "
                   "model_performance_metrics WHERE id = %s", (a["metric_id"],))[0]
    assert row == (6.0, 1.6, "weekly check", {"mape": 6.0, "rmse": 1.6, "mase": 0.9})


def test_record_anomaly_zero_values_round_trip(stack):
    machine = add_machine(stack.dsn)
    version = add_version(stack.dsn, machine, "anomaly", ANOMALY_VALIDATION)
    metrics = {"precision": 1.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 3,
               "true_negatives": 700, "false_negatives": 0, "anomaly_rate": 0.021,
               "outlier_percentage": 2.1}
    r = record(stack.base, old_query(machine, "anomaly"), metrics)
    assert r.status_code == 201, r.text
    a = r.json()
    # Training had no labels (f1 null), so anomaly_rate is judged: |0.021-0.02| / 0.02.
    assert a["main_metric"] == "anomaly_rate" and a["model_id"] == version
    assert a["drift_score"] == pytest.approx(0.05)
    assert a["metrics"]["recall"] == 0.0 and a["metrics"]["f1"] == 0.0
    row = pg_query(stack.dsn, "SELECT precision_score, recall_score, f1_score, true_positives, "
                   "false_positives, true_negatives, false_negatives, outlier_percentage "
                   "FROM model_performance_metrics WHERE id = %s", (a["metric_id"],))[0]
    assert row == (1.0, 0.0, 0.0, 0, 3, 700, 0, 2.1)
    t = trend(stack.base, model_type="anomaly", machine_id=machine, until="2024-01-10T00:00:00Z")
    assert t.status_code == 200, t.text
    [m] = t.json()["metrics"]
    assert m["f1_score"] == 0.0 and m["recall_score"] == 0.0 and m["metrics"]["tp"] == 0
    assert t.json()["metric"] == "f1" and m["value"] == 0.0


def test_record_all_zero_metrics_stay_zero(stack):
    machine = add_machine(stack.dsn)
    add_version(stack.dsn, machine, "baseline", BASELINE_VALIDATION)
    zeros = {"r_squared": 0.0, "rmse": 0.0, "mae": 0.0, "mape": 0.0}
    r = record(stack.base, old_query(machine, "baseline"), zeros)
    assert r.status_code == 201, r.text
    assert r.json()["metrics"] == zeros
    t = trend(stack.base, model_type="baseline", machine_id=machine,
              until="2024-02-01T00:00:00Z")
    [m] = t.json()["metrics"]
    for k in zeros:
        assert m[k] == 0.0 and m[k] is not None
    # R^2 fell from 0.9 to 0.0, but the main metric of a baseline that sends no
    # cv_rmse_pct is r_squared: (0.9 - 0) / 0.9 = 1 -> drift.
    assert r.json()["main_metric"] == "r_squared"
    assert r.json()["drift_score"] == pytest.approx(1.0)


# ---- record: errors, nothing written -------------------------------------------------------

def _error_cases(machine, other_machine, version, other_type_version, other_machine_version):
    good = {"rmse": 1.0}
    q = old_query(machine, "baseline")
    cases = [
        ("bad machine uuid", dict(q, machine_id="not-a-uuid"), good, None, 400, "machine_id"),
        ("bad model_id uuid", dict(q, model_id="1234"), good, None, 400, "model_id"),
        ("unknown machine", dict(q, machine_id=str(uuid.uuid4())), good, None, 404, "not found"),
        ("unknown version", dict(q, model_id=str(uuid.uuid4())), good, None, 404, "not found"),
        ("version of another type", dict(q, model_id=other_type_version), good, None, 400,
         "not a baseline model"),
        ("version of another machine", dict(q, model_id=other_machine_version), good, None, 400,
         "model_id"),
        ("no active version", dict(q, machine_id=other_machine), good, None, 404,
         "no active baseline"),
        ("missing evaluation_end", {k: v for k, v in q.items() if k != "evaluation_end"}, good,
         None, 400, "evaluation_end"),
        ("missing model_type", {k: v for k, v in q.items() if k != "model_type"}, good, None,
         400, "model_type"),
        ("missing metrics", q, None, None, 400, "metrics"),
        ("probe type", dict(q, model_type="probe"), good, None, 400, "model_type"),
        ("bad time", dict(q, evaluation_start="2024-13-01"), good, None, 400,
         "evaluation_start"),
        ("window reversed", dict(q, evaluation_start=W_END, evaluation_end=W_START), good, None,
         400, "evaluation_end"),
        ("empty window", dict(q, evaluation_end=W_START), good, None, 400, "evaluation_end"),
        ("window over 3 years", dict(q, evaluation_start="2020-01-01T00:00:00Z"), good, None,
         400, "evaluation_end"),
        ("r_squared above 1", q, {"r_squared": 1.5}, None, 400, "r_squared"),
        ("negative rmse", q, {"rmse": -0.1}, None, 400, "rmse"),
        ("negative mape", q, {"mape_pct": -3}, None, 400, "mape_pct"),
        ("precision above 1", q, {"precision": 1.2}, None, 400, "precision"),
        ("f1 below 0", q, {"f1_score": -0.2}, None, 400, "f1_score"),
        ("fractional count", q, {"tp": 1.5}, None, 400, "tp"),
        ("NaN", q, None, '{"mae": 1.0, "rmse": NaN}', 400, "metric rmse"),
        ("Infinity", q, None, '{"rmse": Infinity}', 400, "metric rmse"),
        ("-Infinity", q, None, '{"r_squared": -Infinity}', 400, "metric r_squared"),
        ("overflow to infinity", q, None, '{"rmse": 1e999}', 400, "metric rmse"),
        ("string value", q, {"rmse": "0.5"}, None, 400, "metric rmse"),
        ("null value", q, {"rmse": None}, None, 400, "metric rmse"),
        ("too many metrics", q, {f"m{i}": i for i in range(65)}, None, 400, "at most 64"),
        ("no metrics", q, {}, None, 400, "at least one"),
        ("bad metric name", q, {"RMSE": 1.0}, None, 400, "RMSE"),
        ("metric name too long", q, {"m" * 65: 1.0}, None, 400, "name must match"),
        ("duplicate metric", q, None, '{"rmse": 1, "rmse": 2}', 400, "given twice"),
        ("metric and alias", q, {"precision": 0.5, "precision_score": 0.5}, None, 400,
         "given twice"),
        ("body not an object", q, None, "[1, 2]", 400, "body"),
        ("metrics in query and body", dict(q, metrics='{"rmse": 1}'), good, None, 400,
         "metrics"),
        ("new client unknown field",
         None, dict(q, metrics=good, colour="red"), None, 400, "colour"),
        ("new client NaN", None, None,
         json.dumps(dict(q, metrics={"rmse": 1.0}))[:-1].replace('"rmse": 1.0',
                                                                 '"rmse": NaN') + "}",
         400, "metric rmse"),
        ("new client metrics not an object", None, dict(q, metrics=[1]), None, 400,
         "metrics"),
        ("field in query and body", q, dict(q, metrics=good), None, 400, "model_type"),
    ]
    return cases


def test_record_errors_write_nothing(stack):
    machine = add_machine(stack.dsn)
    other = add_machine(stack.dsn)
    version = add_version(stack.dsn, machine, "baseline", BASELINE_VALIDATION)
    other_type = add_version(stack.dsn, machine, "anomaly", ANOMALY_VALIDATION)
    other_machine = add_version(stack.dsn, other, "forecast_arima", FORECAST_VALIDATION)
    add_readings(stack.dsn, machine, W_START, 24)
    # A drift-sized value in the good metric would raise alerts if anything got through.
    before = counts(stack.dsn)
    for name, query, body, raw, status, detail in _error_cases(machine, other, version,
                                                                other_type, other_machine):
        r = record(stack.base, query, body, raw)
        assert r.status_code == status, (name, r.status_code, r.text)
        assert detail in r.json()["detail"], (name, r.json())
    assert counts(stack.dsn) == before
    # The same request with good input is accepted (the cases fail for their stated reason).
    assert record(stack.base, old_query(machine, "baseline"), {"rmse": 2.0}).status_code == 201


def test_record_rejects_get(stack):
    r = requests.get(f"{stack.base}{PERF}/metrics/record", timeout=10)
    assert r.status_code == 405 and "detail" in r.json()


# ---- performance drift, alert and automatic retrain --------------------------------------

def test_drift_raises_one_alert_and_one_retrain_per_cooldown(stack):
    machine = add_machine(stack.dsn)
    add_version(stack.dsn, machine, "forecast_arima", FORECAST_VALIDATION)
    r = record(stack.base, old_query(machine, "forecast_arima"), {"mape": 12.0, "rmse": 3.0})
    assert r.status_code == 201, r.text
    a = r.json()
    assert a["drift_detected"] is True
    assert a["drift_score"] == pytest.approx((12.0 - 5.0) / 5.0)
    assert "Retrain" in a["recommendation"]
    assert a["retrain_triggered"] is True and a["alert_id"]
    job = a["retrain_job_id"]
    assert a["auto_action_result"] == f"triggered job {job}"
    [alert] = open_alerts(stack.dsn, machine)
    assert alert[0] == a["alert_id"]
    assert alert[1] == "critical"  # 1.4 >= 2 x 0.5
    assert alert[2]["drift_type"] == "concept_drift" and alert[2]["occurrences"] == 1
    assert alert[2]["metric"] == "mape" and alert[2]["validation_value"] == 5.0
    assert alert[3:6] == (True, "auto_retrain", f"triggered job {job}")
    jobs = drift_jobs(stack.dsn, machine, "forecast_arima")
    assert jobs == [(job, "pending", "auto_retrain", jobs[0][3])]
    assert "mape" in jobs[0][3]
    # The job was pushed to the queue like any trigger.
    rds = redis_lib.Redis.from_url(stack.api.env["ENMS_REDIS_URL"])
    queued = [x.decode() for x in rds.lrange(stack.api.env["ENMS_REDIS_PREFIX"] +
                                              ":queue:default", 0, -1)]
    assert queued == [job]
    # The job finishes, so only the cooldown can stop a second retrain.
    execute(stack.dsn, "UPDATE model_training_history SET training_status = 'failed' "
            "WHERE id = %s", (job,))
    r2 = record(stack.base, old_query(machine, "forecast_arima"), {"mape": 8.0})
    assert r2.status_code == 201, r2.text
    b = r2.json()
    assert b["drift_detected"] is True and b["drift_score"] == pytest.approx(0.6)
    assert b["alert_id"] == a["alert_id"] and b["retrain_triggered"] is False
    assert b["auto_action_result"].startswith("skipped: cooldown until ")
    [alert] = open_alerts(stack.dsn, machine)
    assert alert[1] == "warning" and alert[2]["occurrences"] == 2
    assert alert[3] is True and alert[5].startswith("skipped: cooldown until ")
    assert len(drift_jobs(stack.dsn, machine, "forecast_arima")) == 1
    # A record without drift changes neither.
    r3 = record(stack.base, old_query(machine, "forecast_arima"), {"mape": 5.5})
    assert r3.json()["drift_detected"] is False and r3.json()["alert_id"] is None
    assert open_alerts(stack.dsn, machine)[0][2]["occurrences"] == 2
    # Once resolved, the next drift opens a new alert.
    execute(stack.dsn, "UPDATE model_alerts SET is_resolved = true, resolved_at = now() "
            "WHERE id = %s", (a["alert_id"],))
    r4 = record(stack.base, old_query(machine, "forecast_arima"), {"mape": 9.0})
    assert r4.json()["alert_id"] not in (None, a["alert_id"])
    assert open_alerts(stack.dsn, machine)[0][2]["occurrences"] == 1


def test_without_cooldown_a_finished_retrain_allows_the_next(stack):
    api = stack.start(ENMS_DRIFT_COOLDOWN_S=0)
    machine = add_machine(stack.dsn)
    add_version(stack.dsn, machine, "baseline", BASELINE_VALIDATION)
    q = old_query(machine, "baseline")
    first = record(api.base, q, {"cv_rmse_pct": 20.0}).json()
    assert first["retrain_triggered"] is True
    # While that job is pending, a second drift does not add one (duplicate rule).
    second = record(api.base, q, {"cv_rmse_pct": 21.0}).json()
    assert second["retrain_triggered"] is False
    assert second["auto_action_result"] == \
        f"skipped: training already in progress ({first['retrain_job_id']})"
    execute(stack.dsn, "UPDATE model_training_history SET training_status = 'completed' "
            "WHERE id = %s", (first["retrain_job_id"],))
    third = record(api.base, q, {"cv_rmse_pct": 22.0}).json()
    assert third["retrain_triggered"] is True
    assert len(drift_jobs(stack.dsn, machine, "baseline")) == 2


def test_auto_retrain_disabled_creates_no_job(stack):
    api = stack.start(ENMS_AUTO_RETRAIN=0)
    machine = add_machine(stack.dsn)
    add_version(stack.dsn, machine, "anomaly", dict(ANOMALY_VALIDATION, f1=0.8))
    r = record(api.base, old_query(machine, "anomaly"), {"f1": 0.3, "anomaly_rate": 0.02})
    a = r.json()
    assert r.status_code == 201 and a["main_metric"] == "f1"
    assert a["drift_detected"] is True and a["drift_score"] == pytest.approx(0.5 / 0.8)
    assert a["retrain_triggered"] is False and a["auto_action_result"] == "disabled"
    [alert] = open_alerts(stack.dsn, machine)
    assert alert[3:6] == (False, "auto_retrain", "disabled")
    assert pg_query(stack.dsn, "SELECT count(*) FROM model_training_history WHERE "
                    "trigger_type = 'drift_detected'")[0][0] == 0


def test_concurrent_drifts_meet_in_one_alert_and_one_job(stack):
    machine = add_machine(stack.dsn)
    add_version(stack.dsn, machine, "forecast_arima", FORECAST_VALIDATION)
    n = 16

    def one(i):
        return record(stack.base, old_query(machine, "forecast_arima"), {"mape": 10.0 + i})

    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        answers = list(pool.map(one, range(n)))
    assert [r.status_code for r in answers] == [201] * n
    assert len({r.json()["alert_id"] for r in answers}) == 1
    assert sum(r.json()["retrain_triggered"] for r in answers) == 1
    [alert] = open_alerts(stack.dsn, machine)
    assert alert[2]["occurrences"] == n
    assert len(drift_jobs(stack.dsn, machine, "forecast_arima")) == 1
    assert pg_query(stack.dsn, "SELECT count(*) FROM model_performance_metrics WHERE "
                    "machine_id = %s AND drift_detected", (machine,))[0][0] == n


def test_alerts_of_other_model_types_are_separate(stack):
    machine = add_machine(stack.dsn)
    add_version(stack.dsn, machine, "forecast_arima", FORECAST_VALIDATION)
    add_version(stack.dsn, machine, "baseline", BASELINE_VALIDATION)
    a = record(stack.base, old_query(machine, "forecast_arima"), {"mape": 20.0}).json()
    b = record(stack.base, old_query(machine, "baseline"), {"cv_rmse_pct": 30.0}).json()
    assert a["alert_id"] != b["alert_id"]
    assert sorted(x[6] for x in open_alerts(stack.dsn, machine)) == ["baseline",
                                                                     "forecast_arima"]
    assert a["retrain_triggered"] and b["retrain_triggered"]


# ---- trend -------------------------------------------------------------------------------

def test_trend_lists_anomaly_and_forecast_metrics(stack):
    machine = add_machine(stack.dsn, name="Trend-Machine")
    add_version(stack.dsn, machine, "anomaly", ANOMALY_VALIDATION)
    add_version(stack.dsn, machine, "forecast_arima", FORECAST_VALIDATION)
    for d, (rate, mape) in enumerate([(0.02, 5.0), (0.03, 5.5), (0.025, 6.0)]):
        s, e = f"2024-01-0{d + 1}T00:00:00Z", f"2024-01-0{d + 2}T00:00:00Z"
        assert record(stack.base, old_query(machine, "anomaly", start=s, end=e),
                      {"anomaly_rate": rate}).status_code == 201
        assert record(stack.base, old_query(machine, "forecast_arima", start=s, end=e),
                      {"mape": mape, "rmse": 1.0}).status_code == 201
    t = trend(stack.base, model_type="anomaly", machine_id=machine, days=30,
              until="2024-01-10T00:00:00Z")
    assert t.status_code == 200, t.text
    a = t.json()
    assert a["machine_name"] == "Trend-Machine" and a["model_type"] == "anomaly"
    assert a["metric"] == "anomaly_rate" and a["lower_is_better"] is True
    assert [m["value"] for m in a["metrics"]] == [0.02, 0.03, 0.025]
    assert [m["evaluation_date"][:10] for m in a["metrics"]] == \
        ["2024-01-02", "2024-01-03", "2024-01-04"]
    for key in ("id", "model_id", "model_type", "machine_id", "model_version",
                "evaluation_date", "r_squared", "rmse", "mae", "mape", "drift_detected",
                "drift_score", "sample_count", "data_completeness"):
        assert key in a["metrics"][0], key
    assert a["n"] == 3 and a["trend_direction"] in ("stable", "degrading", "improving")
    f = trend(stack.base, model_type="forecast_arima", machine_id=machine,
              until="2024-01-10T00:00:00Z").json()
    assert f["metric"] == "mape" and [m["mape"] for m in f["metrics"]] == [5.0, 5.5, 6.0]
    # Another metric by name or alias; the window excludes what lies after `until`.
    g = trend(stack.base, model_type="forecast_arima", machine_id=machine, metric="rmse",
              until="2024-01-03T00:00:00Z").json()
    assert g["metric"] == "rmse" and len(g["metrics"]) == 2
    assert g["trend_direction"] == "stable" and g["p_value"] is None and "trend_note" in g


def test_trend_flat_noisy_series_is_stable(stack):
    machine = add_machine(stack.dsn)
    rng = random.Random(7)
    values = [round(0.85 + rng.gauss(0, 0.03), 4) for _ in range(30)]
    slope, t_stat, mean = ols(list(range(30)), values)
    assert abs(t_stat) < 1.5  # the series really is flat (checked, not assumed)
    insert_series(stack.dsn, machine, "baseline", "r_squared", values)
    r = trend(stack.base, model_type="baseline", machine_id=machine, days=60,
              until="2023-04-15T00:00:00Z")
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["metric"] == "r_squared" and a["n"] == 30
    assert a["trend_direction"] == "stable"
    assert a["p_value"] > 0.05
    assert a["slope"] == pytest.approx(slope, rel=1e-9, abs=1e-12)
    assert a["degradation_rate"] == pytest.approx(-slope / mean * 100, rel=1e-9, abs=1e-12)


def test_trend_degrading_series_with_its_rate(stack):
    machine = add_machine(stack.dsn)
    rng = random.Random(11)
    values = [round(10 + 0.5 * d + rng.uniform(-0.3, 0.3), 4) for d in range(30)]
    slope, t_stat, mean = ols(list(range(30)), values)
    insert_series(stack.dsn, machine, "forecast_arima", "mape", values)
    a = trend(stack.base, model_type="forecast_arima", machine_id=machine, days=90,
              until="2023-05-01T00:00:00Z").json()
    assert a["metric"] == "mape" and a["trend_direction"] == "degrading"
    assert a["p_value"] < 1e-6
    assert a["slope"] == pytest.approx(slope, rel=1e-9)
    # MAPE rises about 0.5 points a day around a mean near 17.25: ~2.9 % per day worse.
    assert a["degradation_rate"] == pytest.approx(slope / mean * 100, rel=1e-9)
    assert 2.5 < a["degradation_rate"] < 3.3
    # The same rise in a higher-is-better metric is an improvement (negative rate).
    other = add_machine(stack.dsn)
    insert_series(stack.dsn, other, "baseline", "r_squared", [v / 100 for v in values])
    b = trend(stack.base, model_type="baseline", machine_id=other, days=90,
              until="2023-05-01T00:00:00Z").json()
    assert b["trend_direction"] == "improving"
    assert b["degradation_rate"] == pytest.approx(-slope / mean * 100, rel=1e-9)


def test_trend_keeps_the_newest_rows_oldest_first(stack):
    """Over the row limit (10,000) the trend keeps the newest evaluations and lists them
    oldest first; rows at the same time and creation are ordered by id."""
    machine = add_machine(stack.dsn)
    # 10,010 evaluations six hours apart whose r_squared is their number g, then three more
    # in the next slot with one created_at (only their ids order them).
    execute(stack.dsn, "INSERT INTO model_performance_metrics (model_type, machine_id, "
            "evaluation_end, evaluation_date, r_squared) SELECT 'baseline', %s, "
            "'1990-01-01T00:00:00Z'::timestamptz + make_interval(hours => 6 * g), "
            "'1990-01-01T00:00:00Z'::timestamptz + make_interval(hours => 6 * g), "
            "g / 100000.0 FROM generate_series(1, 10010) g", (machine,))
    execute(stack.dsn, "INSERT INTO model_performance_metrics (model_type, machine_id, "
            "evaluation_end, evaluation_date, created_at, r_squared) SELECT 'baseline', %s, "
            "'1990-01-01T00:00:00Z'::timestamptz + make_interval(hours => 6 * 10011), "
            "'1990-01-01T00:00:00Z'::timestamptz + make_interval(hours => 6 * 10011), "
            "'2020-01-01T00:00:00Z', 0.5 FROM generate_series(1, 3)", (machine,))
    until = (datetime.datetime(1990, 1, 1, tzinfo=datetime.timezone.utc)
             + datetime.timedelta(hours=6 * 10011)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # 1,000 days hold slots 6012 .. 10011: within the limit, all of them, oldest first.
    r = trend(stack.base, model_type="baseline", machine_id=machine, days=1000, until=until)
    assert r.status_code == 200, r.text
    a = r.json()
    assert len(a["metrics"]) == 3999 + 3 and a["truncated"] is False
    assert [m["r_squared"] for m in a["metrics"][:2]] == [6012 / 100000, 6013 / 100000]
    tail = a["metrics"][-4:]
    assert [m["r_squared"] for m in tail] == [0.1001, 0.5, 0.5, 0.5]
    assert [m["id"] for m in tail[1:]] == sorted(m["id"] for m in tail[1:])
    # 3,650 days hold all 10,013: the newest 10,000, oldest first; the 13 oldest dropped.
    r = trend(stack.base, model_type="baseline", machine_id=machine, days=3650, until=until)
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["truncated"] is True and len(b["metrics"]) == 10000 and b["n"] == 10000
    values = [m["r_squared"] for m in b["metrics"]]
    assert values[:2] == [14 / 100000, 15 / 100000]
    assert values[-4:] == [0.1001, 0.5, 0.5, 0.5]
    assert b["metrics"][-3:] == a["metrics"][-3:]


def test_trend_errors(stack):
    machine = add_machine(stack.dsn)
    insert_series(stack.dsn, machine, "baseline", "r_squared", [0.9, 0.8, 0.85])
    good = {"model_type": "baseline", "machine_id": machine, "until": "2023-03-10T00:00:00Z"}
    assert trend(stack.base, **good).status_code == 200
    cases = [
        (dict(good, machine_id=str(uuid.uuid4())), 404, "not found"),
        (dict(good, model_type="anomaly"), 404, "no anomaly metrics"),
        (dict(good, until="2022-01-01T00:00:00Z"), 404, "no baseline metrics"),
        (dict(good, machine_id="nope"), 400, "machine_id"),
        (dict(good, days=0), 400, "days"),
        (dict(good, days=3651), 400, "days"),
        (dict(good, days="x"), 400, "days"),
        (dict(good, metric="colour"), 400, "metric"),
        (dict(good, until="yesterday"), 400, "until"),
        (dict(good, model_type="probe"), 400, "model_type"),
        ({k: v for k, v in good.items() if k != "model_type"}, 400, "model_type"),
        (dict(good, extra="1"), 400, "extra"),
    ]
    for query, status, detail in cases:
        r = trend(stack.base, **query)
        assert r.status_code == status, (query, r.text)
        assert detail in r.json()["detail"], (query, r.json())
