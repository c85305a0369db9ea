"""Evaluation and anomaly scoring (issue 5): models trained on demo data up to a
date D are evaluated through POST /api/v1/evaluate on the readings after D
(one model_performance_metrics row per model type, created_by 'evaluation',
with plausible metrics), a second evaluation with nothing new records
nothing, a running A/B test gets paired samples, the score schedule writes an
anomalies row for a spike injected after D and raises a critical alert, and
enmsctl evaluate --wait works. Bad requests change nothing."""
import datetime
import math
import time

import pytest
import requests

from conftest import pg_query, run_ctl
from pipeline import (add_machine, pipeline_env, redis_client, start_api, start_worker, trigger,
                      wait_status)

HVAC = "c0000000-0000-0000-0000-000000000002"
END = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
D = datetime.datetime(2025, 12, 15, tzinfo=datetime.timezone.utc)
SPIKE = datetime.datetime(2025, 12, 28, 14, tzinfo=datetime.timezone.utc)


@pytest.fixture
def stack(migrated_db, redis_url, bin_dir, spawn):
    run_ctl(bin_dir, migrated_db, "seed", "--end", "2026-01-01", "--days", "90", check=True)
    env = pipeline_env(migrated_db, redis_url, ENMS_JOB_TIMEOUT_S=300)
    api = start_api(spawn, env)
    worker = start_worker(spawn, env, "we-1")
    r = redis_client(redis_url)
    yield {"dsn": migrated_db, "api": api, "env": env, "bin": bin_dir, "spawn": spawn,
           "workers": [worker]}
    for key in r.scan_iter(f"{env['ENMS_REDIS_PREFIX']}:*"):
        r.delete(key)


def train(stack, model_type, days):
    resp = trigger(stack["api"].base, model_type, HVAC,
                   params={"until": D.strftime("%Y-%m-%dT%H:%M:%SZ"), "days": days})
    assert resp.status_code == 202, resp.text
    job = resp.json()["training_job_id"]
    row = wait_status(stack["dsn"], job, ("completed", "failed"), timeout=180)
    assert row["status"] == "completed", row
    (vid,) = pg_query(stack["dsn"], "SELECT result_version_id::text FROM model_training_history "
                                    "WHERE id = %s", (job,))[0]
    return vid


def evaluation_rows(dsn):
    return pg_query(dsn, "SELECT model_type, model_id::text, metrics, evaluation_start, "
                         "evaluation_end, sample_count, r_squared, rmse, mape "
                         "FROM model_performance_metrics WHERE created_by = 'evaluation' "
                         "ORDER BY model_type")


def evaluate_all(stack):
    resp = requests.post(f"{stack['api'].base}/api/v1/evaluate", json={"machine_id": HVAC},
                         timeout=10)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["skipped"] == []
    rows = {}
    for j in body["jobs"]:
        assert j["machine_id"] == HVAC
        st = wait_status(stack["dsn"], j["job_id"], ("completed", "failed"), timeout=120)
        assert st["status"] == "completed", st
        ((result, kind, trig),) = pg_query(
            stack["dsn"], "SELECT training_metrics, job_kind, trigger_type "
                          "FROM model_training_history WHERE id = %s", (j["job_id"],))
        assert kind == "evaluate" and trig == "manual"
        rows[j["model_type"]] = result
    return rows


def test_evaluate_after_training_records_metrics_then_nothing(stack):
    dsn = stack["dsn"]
    versions = {"baseline": train(stack, "baseline", 60),
                "anomaly": train(stack, "anomaly", 45),
                "forecast_arima": train(stack, "forecast_arima", 30)}
    n_versions = pg_query(dsn, "SELECT count(*) FROM model_versions")[0][0]
    # Shadow mode: an A/B test of the baseline against itself gets paired
    # samples with equal losses.
    (test_id,) = pg_query(
        dsn, "INSERT INTO model_ab_tests (test_name, model_type, machine_id, model_a_id, "
             "model_b_id, test_status, test_end) VALUES ('same', 'baseline', %s, %s, %s, "
             "'running', now() + interval '1 hour') RETURNING id::text",
        (HVAC, versions["baseline"], versions["baseline"]))[0]

    results = evaluate_all(stack)
    assert set(results) == {"baseline", "anomaly", "forecast_arima"}
    rows = {r[0]: r for r in evaluation_rows(dsn)}
    assert set(rows) == {"baseline", "anomaly", "forecast_arima"}
    # Evaluation never creates a model version.
    assert pg_query(dsn, "SELECT count(*) FROM model_versions")[0][0] == n_versions
    for mtype, (_, model_id, metrics, start, end, count, *_rest) in rows.items():
        assert model_id == versions[mtype]
        # The newest readings, at most the default 7 days of them.
        assert end == END, (mtype, end)
        assert start == END - datetime.timedelta(days=7), (mtype, start)
        assert results[mtype]["result"] == "evaluated"
        assert results[mtype]["recorded"]["metric_id"]

    base = rows["baseline"][2]
    # Guideline 14 (daily): CV(RMSE) <= 15 %, |NMBE| <= 5 % on unshifted data.
    assert 0 < base["cv_rmse_pct"] <= 15, base
    assert abs(base["nmbe_pct"]) <= 5, base
    assert 5 <= base["sample_count"] <= 7, base  # complete local days in 7 UTC days
    assert rows["baseline"][7] is not None and rows["baseline"][7] > 0  # rmse column

    fc = results["forecast_arima"]["metrics"]
    assert math.isfinite(fc["mase"]) and 0 < fc["mase"] < 2, fc
    assert 0 < fc["mape"] < 50, fc
    assert fc["sample_count"] == 7 * 24, fc

    an = results["anomaly"]["metrics"]
    assert 0 <= an["anomaly_rate"] < 0.2, an
    assert an["sample_count"] >= 7 * 24 - 2, an

    samples = pg_query(dsn, "SELECT loss_a, loss_b, actual, predicted_a FROM "
                            "model_ab_test_samples WHERE test_id = %s", (test_id,))
    assert 5 <= len(samples) <= 7
    assert all(a == b for a, b, _, _ in samples)
    assert all(abs(a - abs(act - pred)) < 1e-6 * max(1, act) for a, _, act, pred in samples)
    (paired,) = pg_query(dsn, "SELECT paired_samples FROM model_ab_tests WHERE id = %s",
                         (test_id,))[0]
    assert paired == len(samples)

    # Nothing new: the jobs complete, say so, and record nothing.
    again = evaluate_all(stack)
    assert {k: v["result"] for k, v in again.items()} == {
        "baseline": "no new readings", "anomaly": "no new readings",
        "forecast_arima": "no new readings"}
    assert len(evaluation_rows(dsn)) == 3
    assert pg_query(dsn, "SELECT count(*) FROM model_ab_test_samples")[0][0] == len(samples)

    # enmsctl evaluate --wait: same answer through the CLI.
    proc = run_ctl(stack["bin"], dsn, "evaluate", "--machine", HVAC, "--model-type", "baseline",
                   "--wait", env_extra=stack["env"])
    assert proc.returncode == 0, proc.stderr
    assert "queued" in proc.stdout and "completed" in proc.stdout, proc.stdout
    assert '"no new readings"' in proc.stdout
    assert len(evaluation_rows(dsn)) == 3


def test_score_schedule_stores_spike_and_raises_critical_alert(stack):
    dsn = stack["dsn"]
    version = train(stack, "anomaly", 45)
    # A spike after D, five times the hour's energy: far outside the model.
    pg_query(dsn, "UPDATE energy_readings SET energy_kwh = energy_kwh * 5 + 50 "
                  "WHERE machine_id = %s AND ts = %s", (HVAC, SPIKE))
    assert pg_query(dsn, "SELECT count(*) FROM anomalies")[0][0] == 0
    # A worker with the score schedule on scores at start-up. Schedules run
    # in the housekeeping lock holder, so the first worker makes way.
    assert stack["workers"][0].stop() == 0
    start_worker(stack["spawn"], dict(stack["env"], ENMS_SCORE_INTERVAL_S="60"), "we-score")
    job = None
    for _ in range(200):
        got = pg_query(dsn, "SELECT id::text FROM model_training_history WHERE job_kind = 'score'")
        if got:
            job = got[0][0]
            break
        time.sleep(0.1)
    assert job, "no score job was scheduled"
    st = wait_status(dsn, job, ("completed", "failed"), timeout=60)
    assert st["status"] == "completed", st
    ((trig, model_type, result),) = pg_query(
        dsn, "SELECT trigger_type, model_type, training_metrics FROM model_training_history "
             "WHERE id = %s", (job,))
    assert (trig, model_type, result["result"]) == ("scheduled", "anomaly", "scored")

    rows = pg_query(dsn, "SELECT ts, severity, score, model_version_id::text, energy_kwh, "
                         "expected_kwh, features FROM anomalies WHERE machine_id = %s", (HVAC,))
    by_ts = {r[0]: r for r in rows}
    assert SPIKE in by_ts, sorted(by_ts)
    ts, severity, score, vid, energy, expected, features = by_ts[SPIKE]
    assert severity == "critical" and vid == version
    assert energy > 3 * expected, (energy, expected)
    assert "energy_kwh" in features["stood_out"], features
    assert all(r[0] >= D for r in rows)
    # The injected anomalies after D are found too (at least one labelled hour).
    hit = pg_query(dsn, "SELECT count(*) FROM anomalies a JOIN anomaly_labels l "
                        "ON l.machine_id = a.machine_id AND a.ts >= l.ts_start "
                        "AND a.ts < l.ts_end WHERE a.machine_id = %s AND l.source = 'injected'",
                   (HVAC,))[0][0]
    labels_after = pg_query(dsn, "SELECT count(*) FROM anomaly_labels WHERE machine_id = %s "
                                 "AND source = 'injected' AND ts_start >= %s", (HVAC, D))[0][0]
    if labels_after:
        assert hit >= 1
    alerts = pg_query(dsn, "SELECT severity, model_type FROM model_alerts WHERE machine_id = %s "
                           "AND alert_type = 'anomaly_detected' AND NOT is_resolved", (HVAC,))
    assert alerts == [("critical", "anomaly")]
    ((until,),) = pg_query(dsn, "SELECT scored_until FROM anomaly_scoring_state "
                                "WHERE machine_id = %s", (HVAC,))
    assert until == END

    # A user label survives a re-scoring of the same hour.
    pg_query(dsn, "UPDATE anomalies SET label = 'confirmed', labelled_at = now() "
                  "WHERE machine_id = %s AND ts = %s", (HVAC, SPIKE))
    pg_query(dsn, "DELETE FROM anomaly_scoring_state")
    again = pg_query(dsn, "INSERT INTO model_training_history (model_type, machine_id, job_kind, "
                          "trigger_type) VALUES ('anomaly', %s, 'score', 'manual') "
                          "RETURNING id::text", (HVAC,))[0][0]
    redis_client(stack["env"]["ENMS_REDIS_URL"]).lpush(
        f"{stack['env']['ENMS_REDIS_PREFIX']}:queue:default", again)
    assert wait_status(dsn, again, ("completed", "failed"), timeout=60)["status"] == "completed"
    (label,) = pg_query(dsn, "SELECT label FROM anomalies WHERE machine_id = %s AND ts = %s",
                        (HVAC, SPIKE))[0]
    assert label == "confirmed"
    assert pg_query(dsn, "SELECT count(*) FROM anomalies WHERE machine_id = %s",
                    (HVAC,))[0][0] == len(rows)


@pytest.mark.parametrize("body,status", [
    ({"machine_id": "not-a-uuid"}, 400),
    ({"model_type": "probe"}, 400),
    ({"model_type": "baseline", "colour": "red"}, 400),
    ({"days": 0}, 400),
    ({"days": 91}, 400),
    ({"machine_id": "c0000000-0000-0000-0000-0000000000ff"}, 404),
])
def test_evaluate_bad_input_changes_nothing(migrated_db, redis_url, spawn, body, status):
    add_machine(migrated_db, HVAC)
    env = pipeline_env(migrated_db, redis_url)
    api = start_api(spawn, env)
    before = pg_query(migrated_db, "SELECT count(*) FROM model_training_history")[0][0]
    resp = requests.post(f"{api.base}/api/v1/evaluate", json=body, timeout=10)
    assert resp.status_code == status, resp.text
    assert resp.json()["detail"]
    assert pg_query(migrated_db, "SELECT count(*) FROM model_training_history")[0][0] == before


def test_evaluate_without_active_models_creates_nothing(migrated_db, redis_url, spawn):
    add_machine(migrated_db, HVAC)
    api = start_api(spawn, pipeline_env(migrated_db, redis_url))
    resp = requests.post(f"{api.base}/api/v1/evaluate?machine_id={HVAC}", timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"jobs": [], "skipped": []}
    assert pg_query(migrated_db, "SELECT count(*) FROM model_training_history")[0][0] == 0
