"""Job history, detail, cancel, queue status and machines endpoints against a
real PostgreSQL and Redis, with no worker: rows are made by the API or written
directly with SQL, so every status can be set up. Acceptance 7: filters and
keyset paging return exactly the rows SQL says they should."""
import datetime as dt
import time
import uuid

import psycopg2
import pytest
import requests

from conftest import pg_query
from pipeline import MACHINE, add_machine, pipeline_env, redis_client, start_api, trigger

MACHINE_2 = "c0000000-0000-0000-0000-000000000002"
MACHINE_3 = "c0000000-0000-0000-0000-000000000003"


@pytest.fixture
def stack(spawn, migrated_db, redis_url):
    add_machine(migrated_db, MACHINE, name="Compressor-1")
    add_machine(migrated_db, MACHINE_2, name="HVAC-Main", mtype="hvac")
    add_machine(migrated_db, MACHINE_3, name="Boiler-1", mtype="boiler")
    env = pipeline_env(migrated_db, redis_url)
    api = start_api(spawn, env)
    return {"base": api.base, "dsn": migrated_db, "prefix": env["ENMS_REDIS_PREFIX"],
            "redis": redis_client(redis_url)}


def insert_job(dsn, model_type, machine_id, status, trigger_type, created_at, **cols):
    names = ["id", "model_type", "machine_id", "training_status", "trigger_type", "created_at"]
    job_id = cols.pop("id", None) or str(uuid.uuid4())
    values = [job_id, model_type, machine_id, status, trigger_type, created_at]
    for k, v in cols.items():
        names.append(k)
        values.append(v)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(f"INSERT INTO model_training_history ({', '.join(names)}) "
                    f"VALUES ({', '.join(['%s'] * len(values))})", values)
    conn.close()
    return job_id


def seed_history(dsn):
    """30 jobs over 3 machines, 4 model types, 5 statuses and 4 trigger types,
    with some created_at values shared so that the id tie-break matters.
    Pending and running rows are probes, exempt from the one-active rule."""
    base = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    machines = [MACHINE, MACHINE_2, MACHINE_3]
    finished = ["completed", "failed", "cancelled"]
    types = ["baseline", "anomaly", "forecast_arima"]
    triggers = ["manual", "drift", "scheduled", "ab_test"]
    for i in range(30):
        status = finished[i % 3] if i % 5 else ("pending" if i % 2 else "running")
        mtype = "probe" if status in ("pending", "running") else types[i % 3]
        created = base + dt.timedelta(hours=(i // 3) * 7)  # three jobs per instant
        insert_job(dsn, mtype, machines[i % 3 if i % 4 else 0], status, triggers[i % 4],
                   created)


def sql_truth(dsn, where="true", params=()):
    rows = pg_query(dsn, f"SELECT id::text FROM model_training_history WHERE {where} "
                    "ORDER BY created_at DESC, id DESC", params)
    return [r[0] for r in rows]


def page_all(base, limit=7, **filters):
    ids, cursor, pages = [], None, 0
    while True:
        q = dict(filters, limit=limit)
        if cursor:
            q["cursor"] = cursor
        r = requests.get(f"{base}/api/v1/jobs", params=q, timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["jobs"]) <= limit
        ids += [j["id"] for j in body["jobs"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return ids, pages
        assert pages < 50, "paging does not end"


def test_acceptance_7_filters_and_paging_match_sql(stack):
    dsn = stack["dsn"]
    seed_history(dsn)
    cases = [
        ({}, "true", ()),
        ({"status": "completed"}, "training_status = %s", ("completed",)),
        ({"model_type": "baseline"}, "model_type = %s", ("baseline",)),
        ({"machine_id": MACHINE_2}, "machine_id = %s", (MACHINE_2,)),
        ({"trigger_type": "drift"}, "trigger_type = %s", ("drift",)),
        ({"since": "2026-03-03T00:00:00Z"}, "created_at >= %s", ("2026-03-03T00:00:00Z",)),
        ({"until": "2026-03-03T02:00:00+02:00"}, "created_at < %s",
         ("2026-03-03T00:00:00Z",)),
        ({"since": "2026-03-02", "until": "2026-03-04T00:00:00Z", "status": "failed"},
         "created_at >= %s AND created_at < %s AND training_status = %s",
         ("2026-03-02T00:00:00Z", "2026-03-04T00:00:00Z", "failed")),
        ({"model_type": "probe", "machine_id": MACHINE}, "model_type = %s AND machine_id = %s",
         ("probe", MACHINE)),
        ({"status": "running", "trigger_type": "ab_test"},
         "training_status = %s AND trigger_type = %s", ("running", "ab_test")),
    ]
    assert len(sql_truth(dsn)) == 30
    nonempty = 0
    for filters, where, params in cases:
        truth = sql_truth(dsn, where, params)
        nonempty += bool(truth)
        got, pages = page_all(stack["base"], **filters)
        assert got == truth, (filters, got, truth)
        # A full last page is known to be last: no empty page follows it.
        assert pages == max(1, -(-len(truth) // 7)), (filters, pages, len(truth))
    assert nonempty >= 8, "the seeded rows should exercise most filters"
    # One page holding everything, and the default limit.
    r = requests.get(f"{stack['base']}/api/v1/jobs", timeout=10)
    assert [j["id"] for j in r.json()["jobs"]] == sql_truth(dsn)
    assert r.json()["next_cursor"] is None


def test_list_rows_carry_every_column(stack):
    job_id = insert_job(stack["dsn"], "baseline", MACHINE, "completed", "manual",
                        dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
                        training_duration_seconds=0.0, progress=100,
                        training_metrics='{"r_squared": 0.0, "cv_rmse": 12.5}')
    jobs = requests.get(f"{stack['base']}/api/v1/jobs", timeout=10).json()["jobs"]
    assert len(jobs) == 1
    job = jobs[0]
    assert job["id"] == job_id
    assert job["training_duration_seconds"] == 0 and job["training_duration_seconds"] is not None
    assert job["training_metrics"] == {"r_squared": 0.0, "cv_rmse": 12.5}
    assert job["progress"] == 100 and job["attempts"] == 0
    columns = {r[0] for r in pg_query(stack["dsn"], "SELECT column_name FROM "
                                      "information_schema.columns WHERE table_name = "
                                      "'model_training_history'")}
    assert columns <= set(job), columns - set(job)


@pytest.mark.parametrize("query,detail", [
    ("status=done", "status: must be one of pending, running, completed, failed, cancelled"),
    ("model_type=linear", "model_type: must be one of"),
    ("machine_id=42", "machine_id: must be a UUID"),
    ("trigger_type=whim", "trigger_type: must be one of"),
    ("since=yesterday", "since: must be an ISO 8601 time"),
    ("until=2026-02-30", "until: must be an ISO 8601 time"),
    ("limit=0", "limit: must be an integer from 1 to 200"),
    ("limit=201", "limit: must be an integer from 1 to 200"),
    ("limit=ten", "limit: must be an integer from 1 to 200"),
    ("cursor=bm90LWEtY3Vyc29y", "cursor: malformed"),
    ("cursor=%21%21", "cursor: malformed"),
    ("color=red", "color: unknown field"),
    ("status=failed&status=completed", "status: given more than once"),
])
def test_bad_filters_are_400_naming_the_field(stack, query, detail):
    r = requests.get(f"{stack['base']}/api/v1/jobs?{query}", timeout=10)
    assert r.status_code == 400, r.text
    assert r.json()["detail"].startswith(detail), r.json()


def test_job_detail_of_a_pending_job(stack):
    job_id = trigger(stack["base"], model_type="baseline", reason="look").json()["training_job_id"]
    r = requests.get(f"{stack['base']}/api/v1/jobs/{job_id}", timeout=10)
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["id"] == job_id and job["training_status"] == "pending"
    assert job["reason"] == "look" and job["machine_id"] == MACHINE
    assert job["hyperparameters"] == {} and job["error_message"] is None
    assert [(e["from_status"], e["to_status"]) for e in job["events"]] == [(None, "pending")]
    assert job["events"][0]["message"] == "look"
    assert job["live"]["status"] == "pending" and job["live"]["progress"] == 0
    assert job["worker"] is None
    # Upper-case ids are the same job.
    assert requests.get(f"{stack['base']}/api/v1/jobs/{job_id.upper()}",
                        timeout=10).json()["id"] == job_id


def test_job_detail_of_a_running_job_names_its_worker(stack):
    job_id = insert_job(stack["dsn"], "anomaly", MACHINE, "running", "manual",
                        dt.datetime.now(dt.timezone.utc), worker_id="w-test", attempts=1,
                        progress=40, stage="fitting")
    r_, p = stack["redis"], stack["prefix"]
    now = int(time.time())
    r_.hset(f"{p}:job:{job_id}", mapping={"status": "running", "progress": "40",
                                         "stage": "fitting", "heartbeat": str(now - 2),
                                         "worker": "w-test", "attempt": "1"})
    r_.hset(f"{p}:worker:w-test", mapping={"host": "node7", "pid": "4242", "state": "busy",
                                          "job": job_id, "last_beat": str(now - 1),
                                          "started": str(now - 100)})
    job = requests.get(f"{stack['base']}/api/v1/jobs/{job_id}", timeout=10).json()
    assert job["live"]["progress"] == 40 and job["live"]["stage"] == "fitting"
    assert 1 <= job["live"]["heartbeat_age_s"] <= 10
    w = job["worker"]
    assert (w["id"], w["host"], w["pid"]) == ("w-test", "node7", 4242)
    assert 0 <= w["heartbeat_age_s"] <= 10
    r_.delete(f"{p}:worker:w-test")
    job = requests.get(f"{stack['base']}/api/v1/jobs/{job_id}", timeout=10).json()
    assert job["worker"] == {"state": "lost", "id": "w-test"}


def test_job_detail_errors(stack):
    r = requests.get(f"{stack['base']}/api/v1/jobs/{uuid.uuid4()}", timeout=10)
    assert r.status_code == 404 and r.json()["detail"].endswith("not found")
    r = requests.get(f"{stack['base']}/api/v1/jobs/not-a-uuid", timeout=10)
    assert r.status_code == 400 and r.json()["detail"].startswith("job_id: must be a UUID")
    r = requests.get(f"{stack['base']}/api/v1/jobs/{uuid.uuid4()}/nothing", timeout=10)
    assert r.status_code == 404


def test_cancel_of_a_pending_job(stack):
    base, r_, p = stack["base"], stack["redis"], stack["prefix"]
    other = trigger(base, model_type="anomaly").json()["training_job_id"]
    job_id = trigger(base, model_type="baseline").json()["training_job_id"]
    assert job_id in r_.lrange(f"{p}:queue:default", 0, -1)
    r = requests.post(f"{base}/api/v1/jobs/{job_id}/cancel", timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"job_id": job_id, "status": "cancelled", "previous_status": "pending"}
    assert pg_query(stack["dsn"], "SELECT training_status FROM model_training_history "
                    "WHERE id = %s", (job_id,)) == [("cancelled",)]
    assert r_.lrange(f"{p}:queue:default", 0, -1) == [other]
    assert r_.hget(f"{p}:job:{job_id}", "status") == "cancelled"
    # A second cancel finds it finished; a new trigger is allowed again.
    r = requests.post(f"{base}/api/v1/jobs/{job_id}/cancel", timeout=10)
    assert r.status_code == 409 and r.json() == {"detail": "job already cancelled"}
    assert trigger(base, model_type="baseline").status_code == 202


def test_cancel_of_a_running_job_sets_the_flag(stack):
    job_id = insert_job(stack["dsn"], "forecast_arima", MACHINE, "running", "manual",
                        dt.datetime.now(dt.timezone.utc), worker_id="w-1", attempts=1)
    r = requests.post(f"{stack['base']}/api/v1/jobs/{job_id}/cancel", timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["previous_status"] == "running"
    assert stack["redis"].exists(f"{stack['prefix']}:cancel:{job_id}") == 1


def test_cancel_of_a_finished_or_unknown_job(stack):
    done = insert_job(stack["dsn"], "baseline", MACHINE, "completed", "manual",
                      dt.datetime.now(dt.timezone.utc))
    r = requests.post(f"{stack['base']}/api/v1/jobs/{done}/cancel", timeout=10)
    assert r.status_code == 409
    assert r.json() == {"detail": "job already completed"}
    r = requests.post(f"{stack['base']}/api/v1/jobs/{uuid.uuid4()}/cancel", timeout=10)
    assert r.status_code == 404
    r = requests.post(f"{stack['base']}/api/v1/jobs/xyz/cancel", timeout=10)
    assert r.status_code == 400
    r = requests.get(f"{stack['base']}/api/v1/jobs/{done}/cancel", timeout=10)
    assert r.status_code == 405


def test_queue_status(stack):
    base, r_, p = stack["base"], stack["redis"], stack["prefix"]
    r = requests.get(f"{base}/api/v1/queue", timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"queues": [{"name": "default", "depth": 0}], "workers": [],
                        "dead_letter": 0, "processing_total": 0}

    trigger(base, model_type="baseline")
    trigger(base, model_type="anomaly")
    held = str(uuid.uuid4())
    now = int(time.time())
    r_.sadd(f"{p}:workers", "w-alive", "w-gone")
    r_.hset(f"{p}:worker:w-alive", mapping={"host": "node1", "pid": "101", "state": "busy",
                                           "job": held, "last_beat": str(now - 2),
                                           "started": str(now - 60)})
    r_.lpush(f"{p}:processing:w-alive", held)
    r_.lpush(f"{p}:processing:w-gone", str(uuid.uuid4()), str(uuid.uuid4()))
    r_.lpush(f"{p}:dead", str(uuid.uuid4()))
    r_.lpush(f"{p}:queue:bulk", str(uuid.uuid4()))
    body = requests.get(f"{base}/api/v1/queue", timeout=10).json()
    assert body["queues"] == [{"name": "default", "depth": 2}, {"name": "bulk", "depth": 1}]
    assert body["dead_letter"] == 1 and body["processing_total"] == 3
    alive, gone = body["workers"]
    assert alive["id"] == "w-alive" and alive["host"] == "node1" and alive["pid"] == 101
    assert alive["state"] == "busy" and alive["job"] == held and alive["in_flight"] == 1
    assert 1 <= alive["heartbeat_age_s"] <= 10
    assert gone == {"id": "w-gone", "host": None, "pid": None, "state": "lost", "job": None,
                    "heartbeat_age_s": None, "in_flight": 2}
    # Reporting does not clean up: the lost worker stays registered.
    assert r_.sismember(f"{p}:workers", "w-gone")


def test_queue_status_when_redis_is_down(spawn, migrated_db):
    from conftest import free_port
    api = start_api(spawn, pipeline_env(migrated_db, f"redis://127.0.0.1:{free_port()}/0"))
    r = requests.get(f"{api.base}/api/v1/queue", timeout=10)
    assert r.status_code == 503
    assert r.json()["detail"].startswith("redis unavailable: ")


def test_machines_are_listed_by_name(stack):
    r = requests.get(f"{stack['base']}/api/v1/machines", timeout=10)
    assert r.status_code == 200
    machines = r.json()
    assert [m["name"] for m in machines] == ["Boiler-1", "Compressor-1", "HVAC-Main"]
    assert machines[1] == {"id": MACHINE, "name": "Compressor-1", "type": "compressor",
                           "location": "test", "rated_power_kw": 50}
