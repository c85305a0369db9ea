"""POST /api/v1/readings against a real PostgreSQL and Redis: a batch is
stored all or nothing, validated like `enmsctl import`, idempotent on
(machine_id, ts), and queues an anomaly score job for each changed machine
whose anomaly model is active. Every refused batch leaves the tables as
they were (row counts and contents before and after)."""
import datetime as dt
import json
import time
import uuid

import psycopg2
import pytest
import redis as redis_lib
import requests

from conftest import pg_query
from pipeline import MACHINE, add_machine, pipeline_env, start_api

MACHINE_2 = "c0000000-0000-0000-0000-000000000002"
MACHINE_3 = "c0000000-0000-0000-0000-000000000003"


def ts(hour, day=1):
    return f"2026-03-{day:02d}T{hour:02d}:00:00Z"


def reading(machine=MACHINE, hour=0, energy=10.0, **extra):
    r = {"machine_id": machine, "ts": ts(hour), "energy_kwh": energy}
    r.update(extra)
    return r


def activate_anomaly_model(dsn, machine_id):
    """A deployed anomaly version, written as a worker would."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO model_versions (machine_id, model_type, version, artifact, "
                    "is_active, activated_at) VALUES (%s, 'anomaly', 1, '{}', true, now())",
                    (machine_id,))
    conn.close()


@pytest.fixture
def stack(spawn, migrated_db, redis_url):
    add_machine(migrated_db, MACHINE, name="Compressor-1")
    add_machine(migrated_db, MACHINE_2, name="HVAC-Main", mtype="hvac")
    add_machine(migrated_db, MACHINE_3, name="Pump-1", mtype="pump")
    env = pipeline_env(migrated_db, redis_url)
    api = start_api(spawn, env)
    return {"base": api.base, "dsn": migrated_db, "env": env, "redis_url": redis_url}


def post(stack, body, raw=None):
    url = f"{stack['base']}/api/v1/readings"
    if raw is not None:
        return requests.post(url, data=raw, headers={"Content-Type": "application/json"},
                             timeout=30)
    return requests.post(url, json=body, timeout=30)


def table_state(dsn):
    """Everything a refused batch must leave alone."""
    return (pg_query(dsn, "SELECT machine_id::text, ts, energy_kwh, production_count, "
                          "outdoor_temp_c FROM energy_readings ORDER BY 1, 2"),
            pg_query(dsn, "SELECT count(*) FROM model_training_history")[0][0])


def stored(dsn, machine=MACHINE):
    return pg_query(dsn, "SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI'), "
                         "energy_kwh, production_count, outdoor_temp_c FROM energy_readings "
                         "WHERE machine_id = %s ORDER BY ts", (machine,))


def test_batch_stored_with_counts_and_optional_columns(stack):
    body = {"readings": [
        reading(hour=0, energy=12.5, production_count=100, outdoor_temp_c=-3.5),
        reading(hour=1, energy=0, production_count=None),
        {"machine_id": MACHINE_2.upper(), "ts": "2026-03-01T03:00+01:00", "energy_kwh": 7},
    ]}
    r = post(stack, body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["received"], out["inserted"], out["updated"], out["unchanged"]) == (3, 3, 0, 0)
    assert out["machines"] == [MACHINE, MACHINE_2]
    assert out["score_jobs"] == []
    assert stored(stack["dsn"]) == [("2026-03-01T00:00", 12.5, 100.0, -3.5),
                                    ("2026-03-01T01:00", 0.0, None, None)]
    # The offset is converted: 03:00+01:00 is 02:00 UTC.
    assert stored(stack["dsn"], MACHINE_2) == [("2026-03-01T02:00", 7.0, None, None)]


def test_bare_array_accepted(stack):
    r = post(stack, [reading(hour=5), reading(hour=6)])
    assert r.status_code == 200, r.text
    assert r.json()["inserted"] == 2


def test_same_batch_twice_changes_nothing(stack):
    batch = [reading(hour=h, energy=10 + h, outdoor_temp_c=5.0) for h in range(24)]
    assert post(stack, batch).json()["inserted"] == 24
    before = table_state(stack["dsn"])
    r = post(stack, batch)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["inserted"], out["updated"], out["unchanged"]) == (0, 0, 24)
    assert table_state(stack["dsn"]) == before


def test_changed_values_update_and_absent_columns_are_kept(stack):
    post(stack, [reading(hour=0, energy=10, production_count=50, outdoor_temp_c=4.0),
                 reading(hour=1, energy=11, production_count=60, outdoor_temp_c=5.0)])
    # hour 0: a corrected energy, optional columns omitted (kept as stored);
    # hour 1: temperature explicitly null (cleared); hour 2: new.
    r = post(stack, [reading(hour=0, energy=10.25),
                     reading(hour=1, energy=11, production_count=60, outdoor_temp_c=None),
                     reading(hour=2, energy=3)])
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["inserted"], out["updated"], out["unchanged"]) == (1, 2, 0)
    assert stored(stack["dsn"]) == [("2026-03-01T00:00", 10.25, 50.0, 4.0),
                                    ("2026-03-01T01:00", 11.0, 60.0, None),
                                    ("2026-03-01T02:00", 3.0, None, None)]


BAD = [
    # (body, status, words the detail must contain)
    ([reading(), reading(hour=1, machine="not-a-uuid")], 400, "readings[1].machine_id"),
    ([reading(hour=1, machine=str(uuid.uuid4()))], 404, "unknown machine"),
    ([{"machine_id": MACHINE, "ts": ts(1)}], 400, "readings[0].energy_kwh: required"),
    ([{"machine_id": MACHINE, "energy_kwh": 1}], 400, "readings[0].ts: required"),
    ([{"ts": ts(1), "energy_kwh": 1}], 400, "readings[0].machine_id: required"),
    ([reading(), reading(hour=1, energy=None)], 400, "readings[1].energy_kwh: required"),
    ([reading(energy=-0.5)], 400, "energy_kwh: -0.5 is negative"),
    ([reading(energy=2e9)], 400, "energy_kwh: 2e+09 is above 1e+09"),
    ([reading(energy="12")], 400, "energy_kwh: must be a number"),
    ([reading(outdoor_temp_c=71)], 400, "outdoor_temp_c: 71 is above 70"),
    ([reading(outdoor_temp_c=-91)], 400, "outdoor_temp_c: -91 is below -90"),
    ([reading(production_count=-1)], 400, "production_count: -1 is negative"),
    ([reading(production_count=True)], 400, "production_count: must be a number"),
    ([dict(reading(), ts="2026-03-01T00:15:00Z")], 400, "is not on the hour"),
    ([dict(reading(), ts="2026-03-01T00:00:00+05:10")], 400, "not a whole quarter hour"),
    ([dict(reading(), ts="2023-02-29T00:00:00Z")], 400, "day 29 does not exist"),
    ([dict(reading(), ts="yesterday")], 400, "readings[0].ts: is not a timestamp"),
    ([dict(reading(), ts=1700000000)], 400, "readings[0].ts: must be an ISO 8601 string"),
    ([reading(hour=1), reading(hour=2), reading(hour=1, energy=5)], 400,
     "readings[2]: duplicate of readings[0]"),
    # The same instant written with another offset is the same hour.
    ([reading(hour=1), dict(reading(), ts="2026-03-01T02:00:00+01:00")], 400,
     "readings[1]: duplicate of readings[0]"),
    ([dict(reading(), humidity=3)], 400, "readings[0].humidity: unknown field"),
    ([reading(), 7], 400, "readings[1]: must be an object"),
    ({"readings": [reading()], "extra": 1}, 400, "extra: unknown field"),
    ({"readings": {"machine_id": MACHINE}}, 400, "readings: must be an array"),
    ({}, 400, "readings: required"),
    ([], 400, "at least one reading"),
    ("readings", 400, "must be a JSON object"),
    (42, 400, "must be a JSON object"),
]


@pytest.mark.parametrize("body,status,words", BAD, ids=[b[2][:40] for b in BAD])
def test_bad_batches_write_nothing(stack, body, status, words):
    activate_anomaly_model(stack["dsn"], MACHINE)
    post(stack, [reading(hour=20, energy=1.0)])  # something to leave alone
    before = table_state(stack["dsn"])
    r = post(stack, body)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"], r.json()
    assert table_state(stack["dsn"]) == before


@pytest.mark.parametrize("raw,words", [
    ('[{"machine_id": "%s", "ts": "2026-03-01T00:00:00Z", "energy_kwh": NaN}]' % MACHINE,
     "invalid JSON"),
    ('[{"machine_id": "%s", "ts": "2026-03-01T00:00:00Z", "energy_kwh": Infinity}]' % MACHINE,
     "invalid JSON"),
    ('[{"machine_id": "%s", "ts": "2026-03-01T00:00:00Z", "energy_kwh": 1e999}]' % MACHINE,
     "energy_kwh: inf is not a finite number"),
    ('[{"machine_id": "%s", "ts": "2026-03-01T00:00:00Z", "energy_kwh": 1, "energy_kwh": 2}]'
     % MACHINE, "readings[0].energy_kwh: given twice"),
    ('[{"machine_id": "%s", "ts": "2026-03-01T00:00:00Z", "energy_kwh": 1}' % MACHINE,
     "invalid JSON"),
    ("", "body: required"),
])
def test_bad_json_writes_nothing(stack, raw, words):
    before = table_state(stack["dsn"])
    r = post(stack, None, raw=raw)
    assert r.status_code == 400, r.text
    assert words in r.json()["detail"]
    assert table_state(stack["dsn"]) == before


def test_unknown_machine_named_with_row_and_count(stack):
    ghost = str(uuid.uuid4())
    before = table_state(stack["dsn"])
    r = post(stack, [reading(hour=0), reading(hour=1, machine=ghost), reading(hour=2, machine=ghost)])
    assert r.status_code == 404, r.text
    assert r.json()["detail"].startswith(f"readings[1].machine_id: unknown machine {ghost} (2 rows")
    assert table_state(stack["dsn"]) == before


def test_batch_size_bound(stack):
    start = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    rows = [{"machine_id": MACHINE,
             "ts": (start + dt.timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "energy_kwh": 1.0 + i % 7} for i in range(5001)]
    before = table_state(stack["dsn"])
    r = post(stack, rows)
    assert r.status_code == 413, r.text
    assert "5001 readings" in r.json()["detail"] and "at most 5000" in r.json()["detail"]
    assert table_state(stack["dsn"]) == before
    # Exactly the bound is accepted, in one request.
    t0 = time.monotonic()
    r = post(stack, rows[:5000])
    elapsed = time.monotonic() - t0
    assert r.status_code == 200, r.text
    assert r.json()["inserted"] == 5000
    assert pg_query(stack["dsn"], "SELECT count(*) FROM energy_readings")[0][0] == 5000
    print(f"5000-row batch ingested in {elapsed:.3f} s")


def test_score_job_only_for_changed_machines_with_active_anomaly_model(stack):
    activate_anomaly_model(stack["dsn"], MACHINE)
    r = post(stack, [reading(hour=0), reading(machine=MACHINE_2, hour=0)])
    assert r.status_code == 200, r.text
    jobs = r.json()["score_jobs"]
    assert [(j["machine_id"], j["status"]) for j in jobs] == [(MACHINE, "queued")]
    job_id = jobs[0]["job_id"]
    row = pg_query(stack["dsn"], "SELECT job_kind, model_type, machine_id::text, trigger_type, "
                                 "training_status FROM model_training_history")
    assert row == [("score", "anomaly", MACHINE, "scheduled", "pending")]
    rc = redis_lib.Redis.from_url(stack["redis_url"])
    assert rc.lrange(f"{stack['env']['ENMS_REDIS_PREFIX']}:queue:default", 0, -1) == \
        [job_id.encode()]

    # A second batch while the job is pending: no second job, the queued one reports.
    r = post(stack, [reading(hour=1)])
    assert r.json()["score_jobs"] == [{"machine_id": MACHINE, "job_id": job_id,
                                       "status": "already_queued"}]
    assert pg_query(stack["dsn"], "SELECT count(*) FROM model_training_history")[0][0] == 1

    # Nothing changed: nothing to score.
    pg_query(stack["dsn"], "UPDATE model_training_history SET training_status = 'cancelled'")
    r = post(stack, [reading(hour=1)])
    assert r.json()["unchanged"] == 1 and r.json()["score_jobs"] == []
    assert pg_query(stack["dsn"], "SELECT count(*) FROM model_training_history")[0][0] == 1


def test_redis_down_still_stores_readings(spawn, migrated_db, redis_url):
    add_machine(migrated_db, MACHINE)
    activate_anomaly_model(migrated_db, MACHINE)
    env = pipeline_env(migrated_db, redis_url, ENMS_REDIS_URL="redis://127.0.0.1:1/0")
    api = start_api(spawn, env)
    r = requests.post(f"{api.base}/api/v1/readings", json=[reading(hour=3)], timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["inserted"] == 1
    assert [j["status"] for j in r.json()["score_jobs"]] == ["pending"]
    assert pg_query(migrated_db, "SELECT training_status, job_kind FROM model_training_history") \
        == [("pending", "score")]


def test_wrong_method(stack):
    r = requests.get(f"{stack['base']}/api/v1/readings", timeout=10)
    assert r.status_code == 405
