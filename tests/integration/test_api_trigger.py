"""POST /api/v1/model-performance/retrain/trigger against a real PostgreSQL and
Redis, with no worker running (jobs stay pending): validation, the query
parameter form of the old clients, 404 for unknown machines, the one-active-job
rule under 200 concurrent triggers (acceptance 1), and what happens when a
dependency is down."""
import datetime as dt
import http.client
import json
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import free_port, pg_query
from pipeline import MACHINE, add_machine, pipeline_env, redis_client, start_api, trigger

PATH = "/api/v1/model-performance/retrain/trigger"


@pytest.fixture
def stack(spawn, migrated_db, redis_url):
    """An API over a fresh database with the demo machine; probe jobs enabled."""
    add_machine(migrated_db, MACHINE, name="Compressor-1")
    env = pipeline_env(migrated_db, redis_url)
    api = start_api(spawn, env)
    return {"base": api.base, "dsn": migrated_db, "env": env, "api": api,
            "prefix": env["ENMS_REDIS_PREFIX"], "redis": redis_client(redis_url)}


def raw_post(base, target):
    """POSTs to target exactly as written: requests would re-quote a malformed
    %-escape before sending it."""
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request("POST", target, body=b"", headers={"Content-Length": "0"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def job_count(dsn):
    return pg_query(dsn, "SELECT count(*) FROM model_training_history")[0][0]


def test_trigger_records_job_queues_it_and_answers_202(stack):
    r = trigger(stack["base"], model_type="baseline", reason="drift suspected",
                trigger_type="drift")
    assert r.status_code == 202, r.text
    body = r.json()
    job_id = body["training_job_id"]
    assert body["triggered"] is True
    assert body["status"] == "pending"
    assert body["trigger_type"] == "drift"
    assert body["reason"] == "drift suspected"
    assert body["model_type"] == "baseline" and body["machine_id"] == MACHINE
    eta = dt.datetime.strptime(body["estimated_completion"], "%Y-%m-%dT%H:%M:%SZ")
    now = dt.datetime.utcnow()
    assert now - dt.timedelta(seconds=5) < eta < now + dt.timedelta(minutes=10)

    rows = pg_query(stack["dsn"], "SELECT training_status, model_type, machine_id::text, "
                    "trigger_type, reason, triggered_by FROM model_training_history "
                    "WHERE id = %s", (job_id,))
    assert rows == [("pending", "baseline", MACHINE, "drift", "drift suspected", "api")]
    r_ = stack["redis"]
    p = stack["prefix"]
    assert r_.lrange(f"{p}:queue:default", 0, -1) == [job_id]
    live = r_.hgetall(f"{p}:job:{job_id}")
    assert live["status"] == "pending" and live["progress"] == "0"
    assert r_.ttl(f"{p}:job:{job_id}") > 0


def test_query_parameter_form_of_the_old_clients(stack):
    r = requests.post(f"{stack['base']}{PATH}?model_type=anomaly&machine_id={MACHINE}"
                      "&reason=weekly+retrain%21&trigger_type=scheduled", timeout=10)
    assert r.status_code == 202, r.text
    job_id = r.json()["training_job_id"]
    rows = pg_query(stack["dsn"], "SELECT model_type, trigger_type, reason "
                    "FROM model_training_history WHERE id = %s", (job_id,))
    assert rows == [("anomaly", "scheduled", "weekly retrain!")]


def test_reason_and_trigger_type_have_defaults(stack):
    r = requests.post(f"{stack['base']}{PATH}", timeout=10,
                      json={"model_type": "forecast_arima", "machine_id": MACHINE})
    assert r.status_code == 202, r.text
    assert r.json()["trigger_type"] == "manual"
    assert r.json()["reason"] == "manual retrain"


def test_params_are_validated_and_stored(stack):
    r = trigger(stack["base"], model_type="baseline", params={"days": 90})
    assert r.status_code == 202, r.text
    r = trigger(stack["base"], model_type="probe", params={"steps": 3, "step_ms": 0})
    assert r.status_code == 202, r.text
    rows = pg_query(stack["dsn"], "SELECT params FROM model_training_history WHERE id = %s",
                    (r.json()["training_job_id"],))
    assert rows[0][0] == {"steps": 3, "step_ms": 0}


def test_model_params_are_stored_normalised(stack):
    # The worker reads one spelling of a time: UTC with a Z, whatever the client sent.
    r = trigger(stack["base"], model_type="anomaly",
                params={"days": 60, "until": "2026-05-01T14:00:00+02:00", "utc_offset_hours": -5})
    assert r.status_code == 202, r.text
    rows = pg_query(stack["dsn"], "SELECT params FROM model_training_history WHERE id = %s",
                    (r.json()["training_job_id"],))
    assert rows[0][0] == {"days": 60, "until": "2026-05-01T12:00:00.000000Z",
                          "utc_offset_hours": -5}


def test_unknown_machine_is_404(stack):
    other = "c0000000-0000-0000-0000-0000000000ff"
    r = trigger(stack["base"], model_type="baseline", machine_id=other)
    assert r.status_code == 404
    assert r.json() == {"detail": f"machine {other} not found"}
    assert job_count(stack["dsn"]) == 0


def test_second_trigger_is_409_with_existing_id(stack):
    first = trigger(stack["base"], model_type="anomaly")
    assert first.status_code == 202
    again = trigger(stack["base"], model_type="anomaly")
    assert again.status_code == 409
    body = again.json()
    assert body["triggered"] is False
    assert body["reason"] == "Training already in progress"
    assert body["detail"] == "Training already in progress"
    assert body["training_job_id"] == first.json()["training_job_id"]
    # Another model type of the same machine is a different job.
    assert trigger(stack["base"], model_type="baseline").status_code == 202


def test_probe_jobs_are_exempt_from_the_one_active_job_rule(stack):
    ids = {trigger(stack["base"], model_type="probe").json()["training_job_id"]
           for _ in range(3)}
    assert len(ids) == 3


def test_acceptance_1_concurrent_triggers_make_one_job(stack):
    def one(_):
        return trigger(stack["base"], model_type="baseline", reason="race")

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(one, range(200)))
    statuses = [a.status_code for a in answers]
    assert statuses.count(202) == 1, statuses
    assert statuses.count(409) == 199, statuses
    job_id = next(a.json()["training_job_id"] for a in answers if a.status_code == 202)
    assert all(a.json()["training_job_id"] == job_id for a in answers if a.status_code == 409)
    rows = pg_query(stack["dsn"], "SELECT id::text FROM model_training_history")
    assert rows == [(job_id,)]
    assert stack["redis"].lrange(f"{stack['prefix']}:queue:default", 0, -1) == [job_id]


# (query string, JSON body, detail the 400 must carry)
BAD_REQUESTS = [
    ("", {"machine_id": MACHINE}, "model_type: required"),
    ("", {"model_type": "baseline"}, "machine_id: required"),
    ("", {"model_type": "baseline", "machine_id": MACHINE, "colour": "red"},
     "colour: unknown field"),
    (f"model_type=baseline&machine_id={MACHINE}&priority=1", None, "priority: unknown field"),
    ("", {"model_type": "baseline", "machine_id": 5}, "machine_id: must be a string"),
    ("", {"model_type": "baseline", "machine_id": "c0000000-0000"},
     "machine_id: must be a UUID"),
    ("", {"model_type": "linear", "machine_id": MACHINE},
     "model_type: must be one of baseline, anomaly, forecast_arima, probe"),
    ("", {"model_type": "baseline", "machine_id": MACHINE, "trigger_type": "whim"},
     "trigger_type: must be one of manual, scheduled, drift, drift_detected, "
     "performance_degradation, ab_test"),
    ("", {"model_type": "baseline", "machine_id": MACHINE, "reason": "x" * 501},
     "reason: longer than 500 characters"),
    ("", {"model_type": "baseline", "machine_id": MACHINE, "params": [1]},
     "params: must be a JSON object"),
    ("", {"model_type": "baseline", "machine_id": MACHINE, "params": {"steps": 3}},
     "params.steps: unknown field"),
    ("", {"model_type": "baseline", "machine_id": MACHINE, "params": {"days": 0}},
     "params.days: must be an integer from 1 to 3650"),
    ("", {"model_type": "baseline", "machine_id": MACHINE, "params": {"until": "yesterday"}},
     "params.until: "),
    ("", {"model_type": "baseline", "machine_id": MACHINE, "params": {"utc_offset_hours": 15}},
     "params.utc_offset_hours: must be an integer from -14 to 14"),
    ("", {"model_type": "probe", "machine_id": MACHINE, "params": {"steps": 0}},
     "params.steps: must be an integer from 1 to 100000"),
    ("", {"model_type": "probe", "machine_id": MACHINE, "params": {"step_ms": 60001}},
     "params.step_ms: must be an integer from 0 to 60000"),
    ("", {"model_type": "probe", "machine_id": MACHINE, "params": {"s": "x" * 5000}},
     "params: larger than 4096 bytes"),
    (f"model_type=baseline&model_type=anomaly&machine_id={MACHINE}", None,
     "model_type: given more than once"),
    ("model_type=baseline", {"model_type": "baseline", "machine_id": MACHINE},
     "model_type: given both in the query string and the body"),
    (f"model_type=baseline&machine_id={MACHINE}&reason=%FF", None,
     "reason: not valid UTF-8 text"),
    (f"model_type=baseline&machine_id={MACHINE}&reason=%G1", None,
     "reason: malformed %-escape"),
]


@pytest.mark.parametrize("query,body,detail", BAD_REQUESTS,
                         ids=[b[2].split(":")[0] + "-" + str(i) for i, b in enumerate(BAD_REQUESTS)])
def test_validation_errors_name_the_field_and_write_nothing(stack, query, body, detail):
    if body is None:
        status, answer = raw_post(stack["base"], f"{PATH}?{query}")
    else:
        url = f"{stack['base']}{PATH}" + (f"?{query}" if query else "")
        r = requests.post(url, json=body, timeout=10)
        status, answer = r.status_code, r.json()
    assert status == 400, answer
    assert answer["detail"].startswith(detail), answer
    assert job_count(stack["dsn"]) == 0
    assert stack["redis"].llen(f"{stack['prefix']}:queue:default") == 0


def test_malformed_json_and_non_object_bodies(stack):
    url = f"{stack['base']}{PATH}"
    for raw, detail in ((b'{"model_type": "baseline",', "body: invalid JSON"),
                        (b'["baseline"]', "body: must be a JSON object"),
                        (b'{"model_type": "baseline"} trailing', "body: invalid JSON"),
                        (b'{"reason": "\xff"}', "body: not valid UTF-8 text")):
        r = requests.post(url, data=raw, headers={"Content-Type": "application/json"},
                          timeout=10)
        assert r.status_code == 400, (raw, r.text)
        assert r.json()["detail"].startswith(detail), (raw, r.json())
    assert job_count(stack["dsn"]) == 0


def test_oversized_body_is_413(spawn, migrated_db, redis_url):
    add_machine(migrated_db, MACHINE)
    api = start_api(spawn, pipeline_env(migrated_db, redis_url, ENMS_HTTP_MAX_BODY=2048))
    body = '{"model_type": "baseline", "machine_id": "%s", "reason": "%s"}' % (MACHINE, "x" * 3000)
    r = requests.post(f"{api.base}{PATH}", data=body,
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 413
    assert r.json()["detail"] == "request body larger than 2048 bytes"
    assert job_count(migrated_db) == 0


def test_probe_is_refused_unless_enabled(spawn, migrated_db, redis_url):
    add_machine(migrated_db, MACHINE)
    api = start_api(spawn, pipeline_env(migrated_db, redis_url, ENMS_ENABLE_PROBE=0))
    r = trigger(api.base, model_type="probe")
    assert r.status_code == 400
    assert r.json()["detail"] == "model_type: must be one of baseline, anomaly, forecast_arima"
    assert job_count(migrated_db) == 0


def test_wrong_method_is_405(stack):
    r = requests.get(f"{stack['base']}{PATH}", timeout=10)
    assert r.status_code == 405
    assert "detail" in r.json()


def test_postgresql_down_is_503(spawn, redis_url):
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/enms"
    api = start_api(spawn, pipeline_env(dsn, redis_url))
    r = trigger(api.base, model_type="baseline")
    assert r.status_code == 503
    assert r.json()["detail"].startswith("postgresql unavailable"), r.json()


def test_redis_down_still_records_the_job(spawn, migrated_db):
    """PostgreSQL is the record: the job is written and housekeeping will
    dispatch it once Redis is back, so the trigger still succeeds."""
    add_machine(migrated_db, MACHINE)
    api = start_api(spawn, pipeline_env(migrated_db, f"redis://127.0.0.1:{free_port()}/0"))
    r = trigger(api.base, model_type="baseline")
    assert r.status_code == 202, r.text
    rows = pg_query(migrated_db, "SELECT training_status FROM model_training_history "
                    "WHERE id = %s", (r.json()["training_job_id"],))
    assert rows == [("pending",)]
