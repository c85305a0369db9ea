"""Issue 8, live but stuck: a job whose heartbeat goes on while its progress
does not move for ENMS_STUCK_PROGRESS_S is taken from its worker and
re-queued, each time using up an attempt; the last attempt is failed and
dead-lettered. A training thread that ignores the stop (the probe's
`hang_at`) is ended by the worker replacing its own process image, so the
slot frees; one that obeys it just stops. docs/reliability.md describes what
this shows."""

from conftest import log_records, pg_query
from pipeline import (MACHINE, add_machine, events_of, pipeline_env, processing_lists,
                      redis_client, start_api, start_worker, trigger, wait_for, wait_status)

STUCK_S = 2


def messages(proc, job=None):
    records, problems = log_records(proc.output())
    assert not problems, problems[:5]
    return [r["msg"] for r in records if job is None or r.get("job_id") == job]


def release_messages(dsn, job):
    return [m for (m,) in pg_query(dsn, "SELECT message FROM job_events WHERE job_id = %s AND "
                                   "from_status = 'running' AND to_status = 'pending' "
                                   "ORDER BY id", (job,))]


def test_hung_job_is_requeued_then_dead_lettered_and_workers_recover(spawn, migrated_db,
                                                                      redis_url):
    add_machine(migrated_db, MACHINE)
    env = pipeline_env(migrated_db, redis_url, ENMS_STUCK_PROGRESS_S=STUCK_S,
                       ENMS_MAX_ATTEMPTS=2, ENMS_LOG_LEVEL="info")
    p = env["ENMS_REDIS_PREFIX"]
    r = redis_client(redis_url)
    api = start_api(spawn, env)
    workers = {wid: start_worker(spawn, env, wid) for wid in ("stuck-a", "stuck-b")}
    pids = {wid: w.proc.pid for wid, w in workers.items()}

    # Two steps of progress, then the training thread sleeps forever without
    # asking should_stop; the heartbeat (main thread) goes on.
    resp = trigger(api.base, params={"steps": 10, "step_ms": 100, "hang_at": 3})
    assert resp.status_code == 202, resp.text
    job = resp.json()["training_job_id"]
    wait_status(migrated_db, job, "running", timeout=20)

    # Within the limit + a heartbeat + the 2 s stop wait + slack, attempt 1
    # is handed back ...
    wait_for(lambda: release_messages(migrated_db, job), STUCK_S + 10, "attempt 1 re-queued")
    assert release_messages(migrated_db, job) == [f"no progress for {STUCK_S} s"]
    # ... and the hang comes back on attempt 2, which uses up the attempts.
    row = wait_status(migrated_db, job, ("failed", "completed", "cancelled"),
                      timeout=2 * STUCK_S + 20)
    assert row["status"] == "failed", row
    assert row["attempts"] == 2
    assert row["error_message"] == f"failed after 2 attempts: no progress for {STUCK_S} s"
    # PostgreSQL first, then the dead-letter list: the push follows the commit.
    wait_for(lambda: r.lrange(f"{p}:dead", 0, -1) == [job], 5, "job alone in the dead-letter list")
    alerts = pg_query(migrated_db, "SELECT count(*) FROM model_alerts WHERE alert_type = "
                      "'training_failed' AND alert_details->>'job_id' = %s", (job,))
    assert alerts[0][0] == 1
    history = events_of(migrated_db, job)
    assert [(e[0], e[1], e[2]) for e in history if e[0] == "running"] == \
        [("running", "pending", 1), ("running", "failed", 2)]

    # Each attempt's worker said why it stopped, settled the job, and
    # replaced its process image to end the hung thread: same pid, alive.
    ran = [e[3] for e in history if e[1] == "running"]
    assert len(ran) == 2
    for wid in ran:
        msgs = messages(workers[wid], job)
        assert any(m.startswith("stopping attempt") and f"no progress for {STUCK_S} s" in m
                   for m in msgs), msgs
    for wid in set(ran):
        wait_for(lambda: any("restarting the worker process" in m
                             for m in messages(workers[wid])), 10, f"{wid} restarts")
    for wid, w in workers.items():
        assert w.proc.poll() is None, w.output()[-2000:]
        assert w.proc.pid == pids[wid]
    wait_for(lambda: all(not v for v in processing_lists(r, p).values()), 10,
             "processing lists empty")

    # The slots are free again: a job that moves completes.
    resp = trigger(api.base, params={"steps": 3, "step_ms": 50})
    assert resp.status_code == 202, resp.text
    nxt = resp.json()["training_job_id"]
    row = wait_status(migrated_db, nxt, ("completed", "failed"), timeout=20)
    assert (row["status"], row["attempts"]) == ("completed", 1)


def test_training_that_obeys_the_stop_ends_without_a_restart(spawn, migrated_db, redis_url):
    """A step of a minute reports no progress for a minute: with a 2 s limit
    it counts as stuck. The probe asks should_stop while it naps, so the
    thread ends and the worker carries on without replacing itself."""
    add_machine(migrated_db, MACHINE)
    env = pipeline_env(migrated_db, redis_url, ENMS_STUCK_PROGRESS_S=STUCK_S,
                       ENMS_MAX_ATTEMPTS=1, ENMS_LOG_LEVEL="info")
    p = env["ENMS_REDIS_PREFIX"]
    r = redis_client(redis_url)
    api = start_api(spawn, env)
    worker = start_worker(spawn, env, "stuck-coop")

    resp = trigger(api.base, params={"steps": 2, "step_ms": 60000})
    assert resp.status_code == 202, resp.text
    job = resp.json()["training_job_id"]
    row = wait_status(migrated_db, job, ("failed", "completed", "cancelled"), timeout=STUCK_S + 15)
    assert row["status"] == "failed", row
    assert row["attempts"] == 1
    assert row["error_message"] == f"failed after 1 attempt: no progress for {STUCK_S} s"
    # PostgreSQL first, then the dead-letter list: the push follows the commit.
    wait_for(lambda: r.lrange(f"{p}:dead", 0, -1) == [job], 5, "job alone in the dead-letter list")
    msgs = messages(worker)
    assert not any("restarting the worker process" in m for m in msgs), msgs
    assert not any("did not stop" in m for m in msgs), msgs

    resp = trigger(api.base, params={"steps": 3, "step_ms": 50})
    assert resp.status_code == 202, resp.text
    nxt = resp.json()["training_job_id"]
    row = wait_status(migrated_db, nxt, ("completed", "failed"), timeout=20)
    assert (row["status"], row["attempts"]) == ("completed", 1)
    assert worker.proc.poll() is None
