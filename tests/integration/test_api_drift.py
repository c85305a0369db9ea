"""POST /api/v1/model-performance/drift/check (issue 5, acceptance 2 and 4) on the
real pipeline: demo data seeded with drift injected into two machines
(`enmsctl seed --drift`), baselines trained through the API by a worker on the
data before the drift (params.until), then drift checks.

Covers: the seed's drift injection (values against an unshifted seed of the same
window), energy and production drift found and named, no drift before it, the
false-alarm count of 30 consecutive daily checks on unshifted data, concept drift
from a recorded evaluation, one automatic retrain per cooldown, and every
documented error with row counts before and after.

One seeded database serves the whole module (seeding and training take most of
the time); the worker is stopped after training, so the retrain jobs that drift
creates stay pending and countable."""
import json
import os
import uuid

import psycopg2
import pytest
import requests

from conftest import Proc, free_port, pg_query, run_ctl, wait_http
from pipeline import pipeline_env, trigger, wait_status

END = "2026-01-01"
DRIFT_DATE = "2025-12-12"           # D: the injected shifts start here
TRAIN_UNTIL = "2025-11-02T00:00:00Z"  # baselines see nothing after this
COMPRESSOR = "c0000000-0000-0000-0000-000000000001"  # energy x 1.25 from D
HVAC = "c0000000-0000-0000-0000-000000000002"        # unshifted, heating and cooling
CONVEYOR = "c0000000-0000-0000-0000-000000000003"    # production x 1.3 from D
PUMP = "c0000000-0000-0000-0000-000000000004"        # no model trained
BOILER = "c0000000-0000-0000-0000-000000000008"      # concept drift test
TRAINED = (COMPRESSOR, HVAC, CONVEYOR, BOILER)
DRIFTS = ("Compressor-1:2025-12-12:energy:1.25", f"{CONVEYOR}:2025-12-12:production:1.3")
PATH = "/api/v1/model-performance/drift/check"


def _db(admin_dsn, name):
    base, _, _ = admin_dsn.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="module")
def stack(admin_dsn, redis_url, bin_dir, tmp_path_factory):
    name = "drift_" + uuid.uuid4().hex[:10]
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    dsn = _db(admin_dsn, name)
    procs = []
    tmp = tmp_path_factory.mktemp("drift")
    try:
        run_ctl(bin_dir, dsn, "migrate", check=True)
        args = ["seed", "--end", END]
        for d in DRIFTS:
            args += ["--drift", d]
        run_ctl(bin_dir, dsn, *args, check=True)
        env = dict(os.environ)
        env.update(pipeline_env(dsn, redis_url, ENMS_JOB_TIMEOUT_S=300, ENMS_AUTO_RETRAIN=1,
                                ENMS_DRIFT_COOLDOWN_S=86400))
        port = free_port()
        api = Proc([os.path.join(bin_dir, "enms-api")], dict(env, ENMS_HTTP_PORT=str(port)),
                   str(tmp / "api.log"))
        procs.append(api)
        wait_http(f"http://127.0.0.1:{port}/healthz", expect=200)
        base = f"http://127.0.0.1:{port}"
        workers = [Proc([os.path.join(bin_dir, "enms-worker")],
                        dict(env, ENMS_WORKER_ID=f"wd-{i}"), str(tmp / f"worker{i}.log"))
                   for i in (1, 2)]
        procs.extend(workers)
        versions = {}
        for m in TRAINED:
            r = trigger(base, "baseline", m, params={"until": TRAIN_UNTIL})
            assert r.status_code == 202, r.text
            versions[m] = r.json()["training_job_id"]
        for m, job in versions.items():
            row = wait_status(dsn, job, ("completed", "failed", "cancelled"), timeout=240)
            assert row["status"] == "completed", row
            (vid,) = pg_query(dsn, "SELECT result_version_id::text FROM model_training_history "
                                   "WHERE id = %s", (job,))[0]
            versions[m] = vid
        # Drift-triggered retrains must stay countable: no worker from here on.
        for w in workers:
            assert w.stop() == 0, w.output()[-3000:]
        yield {"dsn": dsn, "base": base, "versions": versions, "api": api}
    finally:
        for p in procs:
            p.stop()
        for p in procs:
            assert "Sanitizer" not in p.output(), p.output()[-3000:]
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def check(stack, machine, as_of=None, model_id="version", query=False, **extra):
    fields = {"model_type": "baseline", "machine_id": machine}
    if model_id == "version":
        fields["model_id"] = stack["versions"][machine]
    elif model_id:
        fields["model_id"] = model_id
    if as_of:
        fields["as_of"] = as_of
    fields.update(extra)
    if query:
        return requests.post(stack["base"] + PATH, params=fields, timeout=30)
    return requests.post(stack["base"] + PATH, json=fields, timeout=30)


def counts(dsn):
    return pg_query(dsn, "SELECT (SELECT count(*) FROM model_alerts), "
                         "(SELECT count(*) FROM model_training_history), "
                         "(SELECT count(*) FROM model_performance_metrics)")[0]


def drift_jobs(dsn, machine):
    return pg_query(dsn, "SELECT id::text, training_status FROM model_training_history "
                         "WHERE machine_id = %s AND trigger_type = 'drift_detected'", (machine,))


# ---- the seed's drift injection ------------------------------------------------------------

def test_seed_records_drift_in_truth(stack):
    truth = {m: t for m, t in pg_query(stack["dsn"],
                                       "SELECT machine_id::text, truth FROM demo_truth")}
    assert truth[COMPRESSOR]["drift"] == [
        {"feature": "energy", "from": "2025-12-12T00:00:00Z", "factor": 1.25}]
    assert truth[CONVEYOR]["drift"] == [
        {"feature": "production", "from": "2025-12-12T00:00:00Z", "factor": 1.3}]
    assert "drift" not in truth[HVAC]


def test_seed_drift_changes_only_what_it_names(stack, migrated_db, bin_dir):
    """The drifted seed against a plain seed of the same window: identical before D;
    from D on Compressor-1's energy is x1.25 (to the stored 0.0001 kWh) and
    Conveyor-A's production x1.3 (rounded to whole units) with energy moved by
    0.12 kWh per unit (its true coefficient); the other machines are untouched."""
    run_ctl(bin_dir, migrated_db, "seed", "--end", END, check=True)
    # Hours inside an injected anomaly are left out of the energy comparison: a
    # spike or level shift multiplies the drifted value, a stuck meter repeats it.
    sql = ("SELECT r.machine_id::text, extract(epoch FROM r.ts)::bigint, r.energy_kwh, "
           "r.production_count, r.outdoor_temp_c, r.ts >= '2025-12-12T00:00:00Z', "
           "EXISTS (SELECT 1 FROM anomaly_labels l WHERE l.machine_id = r.machine_id "
           "AND r.ts >= l.ts_start AND r.ts < l.ts_end) "
           "FROM energy_readings r WHERE r.ts >= '2025-12-05T00:00:00Z' ORDER BY 1, 2")
    plain = pg_query(migrated_db, sql)
    drifted = pg_query(stack["dsn"], sql)
    assert len(plain) == len(drifted) == 8 * 27 * 24
    seen = {"energy": 0, "production": 0}
    for p, d in zip(plain, drifted):
        assert p[:2] == d[:2] and p[6] == d[6]
        after, labelled = d[5], d[6]
        if d[0] == COMPRESSOR and after:
            if not labelled:
                assert d[2] == pytest.approx(p[2] * 1.25, abs=2e-4)
            assert d[3:5] == p[3:5]
            seen["energy"] += 1
        elif d[0] == CONVEYOR and after:
            assert d[3] == float(int(p[3] * 1.3 + 0.5))
            if not labelled:
                assert d[2] == pytest.approx(p[2] + 0.12 * (d[3] - p[3]), abs=2e-4)
            assert d[4] == p[4]
            seen["production"] += 1
        else:
            assert d == p
    assert seen == {"energy": 20 * 24, "production": 20 * 24}


@pytest.mark.parametrize("drift,message", [
    ("Nope-1:2025-06-01:energy:1.2", "unknown machine"),
    ("Compressor-1:2025-06-01:power:1.2", "not energy, production or temperature"),
    ("Compressor-1:2025-06-01:energy:0", "factor must lie in"),
    ("Compressor-1:2025-06-01:energy:nan", "is not a number"),
    ("Compressor-1:2025-06-01:temperature:31", "temperature shift must lie in"),
    ("HVAC-Main:2025-06-01:production:1.2", "HVAC-Main has no production"),
    ("Compressor-1:2025-02-30:energy:1.2", "not a date"),
    ("Compressor-1:2026-01-01:energy:1.2", "the seeded window"),
    ("Compressor-1:2025-06-01:energy", "MACHINE:YYYY-MM-DD:FEATURE:FACTOR"),
])
def test_seed_drift_bad_option_loads_nothing(migrated_db, bin_dir, drift, message):
    proc = run_ctl(bin_dir, migrated_db, "seed", "--end", END, "--drift", drift)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert pg_query(migrated_db, "SELECT count(*) FROM energy_readings")[0][0] == 0
    assert pg_query(migrated_db, "SELECT count(*) FROM demo_truth")[0][0] == 0


# ---- drift found, and not found ------------------------------------------------------------

def test_energy_drift_is_detected_and_named(stack):
    r = check(stack, COMPRESSOR, "2025-12-22T00:00:00Z")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["drift_detected"] is True and body["drift_type"] == "data_drift"
    assert body["input_drift"] == {"detected": True, "features": ["energy"]}
    energy = body["features"]["energy"]
    assert energy["drifted"] is True and energy["method"].startswith("baseline v1")
    # Compressor-1 uses about 1,200 kWh a day: +25 % is far above the residual noise.
    assert energy["median_recent"] - energy["median_reference"] > 150
    assert energy["ks_p_effective"] < 0.01 and energy["psi"] > 0.25
    assert body["features"]["production"]["drifted"] is False
    assert body["drift_score"] > body["threshold"] == 1
    assert body["recent_window"] == {"start": "2025-12-15T00:00:00Z",
                                     "end": "2025-12-22T00:00:00Z", "days": 7}
    assert body["model_id"] == stack["versions"][COMPRESSOR] and body["model_version"] == 1
    assert "energy" in body["recommendation"]
    assert body["alert_id"]
    (details, atype) = pg_query(stack["dsn"], "SELECT alert_details, alert_type FROM model_alerts "
                                              "WHERE id = %s", (body["alert_id"],))[0]
    assert atype == "drift_detected" and details["features"] == ["energy"]


def test_production_drift_is_detected_and_named(stack):
    r = check(stack, CONVEYOR, "2025-12-31T00:00:00Z", query=True)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["drift_type"] == "data_drift"
    assert body["input_drift"]["features"] == ["production"]
    prod = body["features"]["production"]
    assert prod["median_recent"] > 0.15  # daily output ~30 % above its weekday level
    # More production costs more energy, and the baseline knows it: no energy drift.
    assert body["features"]["energy"]["drifted"] is False


def test_no_drift_before_the_shift_and_original_fields(stack):
    r = check(stack, COMPRESSOR, "2025-12-10T00:00:00Z")
    assert r.status_code == 200, r.text
    body = r.json()
    for key in ("drift_detected", "drift_score", "drift_type", "recommendation", "threshold",
                "current_performance", "baseline_performance", "features", "performance_drift",
                "input_drift", "alert_id", "auto_action"):
        assert key in body
    assert body["drift_detected"] is False and body["drift_type"] == "no_drift"
    assert body["alert_id"] is None and body["auto_action"] is None
    assert set(body["current_performance"]) == {"r_squared", "rmse", "mae", "mape"}
    assert body["baseline_performance"]["r_squared"] > 0.9  # the holdout's, from training
    assert body["performance_drift"]["available"] is False
    assert set(body["features"]) == {"energy", "production", "temperature"}


@pytest.mark.parametrize("machine", [HVAC, COMPRESSOR, CONVEYOR])
def test_false_alarms_over_30_daily_checks(stack, machine):
    """30 consecutive daily checks (recent windows ending 2025-11-13 .. 2025-12-12, all
    after the training window and before the shift; November to December brings the
    winter's heating): at most one false alarm (<= 5 %)."""
    alarms = []
    for day in range(13, 43):
        as_of = f"2025-11-{day:02d}" if day <= 30 else f"2025-12-{day - 30:02d}"
        r = check(stack, machine, as_of)
        assert r.status_code == 200, r.text
        if r.json()["drift_detected"]:
            alarms.append((as_of, r.json()["input_drift"]["features"]))
    assert len(alarms) <= 1, alarms


def test_concept_drift_from_a_worse_evaluation(stack):
    """Inputs unchanged, but a recorded evaluation 3x worse than validation on the main
    metric: concept drift. Written straight into the table (as metrics/record would)."""
    vid = stack["versions"][BOILER]
    (validation,) = pg_query(stack["dsn"],
                             "SELECT h.validation_metrics FROM model_versions v JOIN "
                             "model_training_history h ON h.id = v.training_job_id "
                             "WHERE v.id = %s", (vid,))[0]
    cv = validation["cv_rmse_pct"]
    worse = {"cv_rmse": cv * 3, "cv_rmse_pct": cv * 3, "r_squared": 0.5, "rmse": 99.0}
    with psycopg2.connect(stack["dsn"]) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO model_performance_metrics (model_id, model_type, machine_id, "
                    "model_version, evaluation_start, evaluation_end, sample_count, metrics, "
                    "r_squared, rmse) VALUES (%s, 'baseline', %s, 1, '2025-11-20', '2025-11-27', "
                    "7, %s, 0.5, 99.0)", (vid, BOILER, json.dumps(worse)))
    conn.close()
    r = check(stack, BOILER, "2025-11-27T00:00:00Z")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["input_drift"]["detected"] is False
    assert body["drift_type"] == "concept_drift" and body["drift_detected"] is True
    perf = body["performance_drift"]
    assert perf["available"] is True and perf["detected"] is True
    assert perf["degradation"] == pytest.approx(2.0, rel=1e-6)
    assert body["current_performance"]["r_squared"] == 0.5
    assert body["current_performance"]["rmse"] == 99.0


def test_auto_retrain_once_per_cooldown(stack):
    first = check(stack, COMPRESSOR, "2025-12-25T00:00:00Z")
    second = check(stack, COMPRESSOR, "2025-12-26T00:00:00Z")
    assert first.status_code == second.status_code == 200
    assert first.json()["drift_detected"] and second.json()["drift_detected"]
    jobs = drift_jobs(stack["dsn"], COMPRESSOR)
    assert len(jobs) == 1, jobs
    assert second.json()["auto_action"]["retrain_triggered"] is False
    assert second.json()["auto_action"]["result"].startswith("skipped")
    # One open alert for the machine and type, raised again rather than duplicated.
    alerts = pg_query(stack["dsn"], "SELECT id::text FROM model_alerts WHERE machine_id = %s "
                                    "AND alert_type = 'drift_detected' AND NOT is_resolved",
                      (COMPRESSOR,))
    assert alerts == [(first.json()["alert_id"],)] == [(second.json()["alert_id"],)]


# ---- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("fields,status,detail", [
    ({"machine_id": "not-a-uuid"}, 400, "machine_id"),
    ({"model_id": "1234"}, 400, "model_id"),
    ({"machine_id": None}, 400, "machine_id: required"),
    ({"model_type": None}, 400, "model_type: required"),
    ({"model_type": "probe"}, 400, "model_type"),
    ({"recent_days": 0}, 400, "recent_days"),
    ({"recent_days": 91}, 400, "recent_days"),
    ({"recent_days": "NaN"}, 400, "recent_days"),
    ({"as_of": "NaN"}, 400, "as_of"),
    ({"as_of": "2025-13-01"}, 400, "as_of"),
    ({"colour": "red"}, 400, "colour"),
    ({"machine_id": str(uuid.UUID(int=7))}, 404, "not found"),
    ({"model_id": str(uuid.UUID(int=9))}, 404, "not found"),
    ({"model_id": "versions:" + HVAC}, 404, "is not a baseline model of machine"),
    ({"machine_id": PUMP, "model_id": None}, 404, "no model version for baseline"),
    ({"model_type": "anomaly", "model_id": None}, 404, "no model version for anomaly"),
    ({"as_of": "2024-06-01T00:00:00Z"}, 422, "not enough data"),
    ({"as_of": "2025-12-22T00:00:00Z", "recent_days": 3}, 422, "need 5"),
])
def test_errors_write_nothing(stack, fields, status, detail):
    body = {"model_type": "baseline", "machine_id": COMPRESSOR,
            "model_id": stack["versions"][COMPRESSOR], "as_of": "2025-12-22T00:00:00Z"}
    for k, v in fields.items():
        if isinstance(v, str) and v.startswith("versions:"):
            v = stack["versions"][v.split(":", 1)[1]]
        if v is None:
            body.pop(k, None)
        else:
            body[k] = v
    before = counts(stack["dsn"])
    r = requests.post(stack["base"] + PATH, json=body, timeout=30)
    assert r.status_code == status, r.text
    assert detail in r.json()["detail"]
    assert counts(stack["dsn"]) == before


def test_query_and_body_together_or_wrong_method(stack):
    before = counts(stack["dsn"])
    r = requests.post(stack["base"] + PATH, params={"machine_id": COMPRESSOR},
                      json={"machine_id": COMPRESSOR, "model_type": "baseline"}, timeout=10)
    assert r.status_code == 400 and "machine_id" in r.json()["detail"]
    r = requests.get(stack["base"] + PATH, params={"machine_id": COMPRESSOR,
                                                   "model_type": "baseline"}, timeout=10)
    assert r.status_code in (404, 405)
    assert counts(stack["dsn"]) == before
