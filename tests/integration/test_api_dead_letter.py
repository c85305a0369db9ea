"""The dead-letter list through the API: GET /api/v1/queue/dead shows each
entry with its job's row (why it died), POST /api/v1/jobs/{id}/requeue puts a
failed job back to pending exactly as `enmsctl requeue` does, and refuses
anything else without changing it."""
import pytest
import requests

from conftest import pg_query
from pipeline import MACHINE, add_machine, job_row, pipeline_env, redis_client, start_api
from test_housekeeping import insert_job


@pytest.fixture
def stack(spawn, migrated_db, redis_url):
    add_machine(migrated_db, MACHINE, name="Compressor-1")
    env = pipeline_env(migrated_db, redis_url)
    api = start_api(spawn, env)
    r = redis_client(redis_url)
    yield {"base": api.base, "dsn": migrated_db, "r": r, "p": env["ENMS_REDIS_PREFIX"]}
    for key in r.scan_iter(f"{env['ENMS_REDIS_PREFIX']}:*"):
        r.delete(key)


def test_dead_list_shows_jobs_and_requeue_puts_one_back(stack):
    p, r, base = stack["p"], stack["r"], stack["base"]
    failed = insert_job(stack["dsn"], "failed", attempts=3, queue_name="bulk")
    pg_query(stack["dsn"], "UPDATE model_training_history SET error_message = 'worker lost 3 times' "
                           "WHERE id = %s RETURNING id", (failed,))
    r.lpush(f"{p}:dead", failed, "11111111-2222-4333-8444-555555555555", "junk")

    listing = requests.get(f"{base}/api/v1/queue/dead", timeout=10)
    assert listing.status_code == 200, listing.text
    body = listing.json()
    assert body["total"] == 3
    # Newest first (LPUSH order); junk is skipped, a vanished job has "job": null.
    assert [e["job_id"] for e in body["dead"]] == ["11111111-2222-4333-8444-555555555555", failed]
    assert body["dead"][0]["job"] is None
    job = body["dead"][1]["job"]
    assert (job["training_status"], job["attempts"], job["machine_name"]) == \
        ("failed", 3, "Compressor-1")
    assert job["error_message"] == "worker lost 3 times"

    resp = requests.post(f"{base}/api/v1/jobs/{failed}/requeue", timeout=10)
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"job_id": failed, "status": "pending", "previous_status": "failed",
                           "queue": "bulk"}
    row = job_row(stack["dsn"], failed)
    assert (row["status"], row["attempts"], row["error_message"]) == ("pending", 0, None)
    assert r.lrange(f"{p}:queue:bulk", 0, -1) == [failed]
    assert failed not in r.lrange(f"{p}:dead", 0, -1)

    # Pending now: a second requeue is a conflict and changes nothing.
    again = requests.post(f"{base}/api/v1/jobs/{failed}/requeue", timeout=10)
    assert again.status_code == 409
    assert again.json()["detail"] == f"job {failed} is pending, not failed"
    assert r.lrange(f"{p}:queue:bulk", 0, -1) == [failed]


def test_requeue_refuses_bad_ids_unknown_jobs_and_the_one_active_rule(stack):
    base, dsn = stack["base"], stack["dsn"]
    failed = insert_job(dsn, "failed", attempts=3, model_type="baseline")
    insert_job(dsn, "pending", model_type="baseline")
    resp = requests.post(f"{base}/api/v1/jobs/{failed}/requeue", timeout=10)
    assert resp.status_code == 409
    assert "another job of its machine and model type" in resp.json()["detail"]
    assert job_row(dsn, failed)["status"] == "failed"

    unknown = "0badc0de-0000-4000-8000-000000000000"
    resp = requests.post(f"{base}/api/v1/jobs/{unknown}/requeue", timeout=10)
    assert resp.status_code == 404 and resp.json()["detail"] == f"job {unknown} not found"
    resp = requests.post(f"{base}/api/v1/jobs/not-a-uuid/requeue", timeout=10)
    assert resp.status_code == 400 and resp.json()["detail"].startswith("job_id: must be a UUID")
    resp = requests.get(f"{base}/api/v1/jobs/{failed}/requeue", timeout=10)
    assert resp.status_code == 405
    resp = requests.post(f"{base}/api/v1/jobs/{failed}/requeue-now", timeout=10)
    assert resp.status_code == 404 and "no such endpoint" in resp.json()["detail"]
    resp = requests.post(f"{base}/api/v1/queue/dead", timeout=10)
    assert resp.status_code == 405
