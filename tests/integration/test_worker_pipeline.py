"""The worker's job pipeline against real PostgreSQL, Redis and worker processes:
claim, start, progress, completion, failure, cancel, timeout, hang, graceful
shutdown, duplicate pushes and stale attempts.

Jobs are created through the API's trigger endpoint when the API is built
(`trigger`); otherwise exactly as the API does it: the row first (pending),
then LPUSH of its id. Cancels go through the API too when it is there, else
through the same two writes it makes (SQL compare-and-set, then the Redis
cancel flag)."""
import json
import os
import signal
import time

import psycopg2
import pytest
import requests

from conftest import ROOT
from pipeline import (MACHINE, add_machine, events_of, job_row, pipeline_env, processing_lists,
                      redis_client, start_api, start_worker, trigger, wait_status)

API_READY = os.path.exists(os.path.join(ROOT, "api", "routes_retrain.c"))


class Pipe:
    """One test's stack: its database, Redis prefix, environment and (when
    built) an API process."""

    def __init__(self, dsn, env, r, spawn):
        self.dsn, self.env, self.r, self.spawn = dsn, env, r, spawn
        self.p = env["ENMS_REDIS_PREFIX"]
        self.api = None
        self.workers = []

    def worker(self, wid, **extra):
        # Info level: some tests read what the worker decided from its log.
        env = dict(self.env, ENMS_LOG_LEVEL="info")
        env.update({k: str(v) for k, v in extra.items()})
        proc = start_worker(self.spawn, env, wid)
        self.workers.append(proc)
        return proc

    def job(self, model_type="probe", params=None, machine_id=MACHINE):
        """Creates a pending job and queues it; returns its id."""
        if self.api:
            resp = trigger(self.api.base, model_type, machine_id, params=params)
            assert resp.status_code == 202, resp.text
            return resp.json()["training_job_id"]
        return self.job_sql(model_type, params, machine_id)

    def job_sql(self, model_type="probe", params=None, machine_id=MACHINE):
        """The API's two writes by hand (row, then push), for what it would refuse."""
        with psycopg2.connect(self.dsn) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO model_training_history (model_type, machine_id, params, "
                        "reason, stage) VALUES (%s, %s, %s::jsonb, 'test', 'queued') "
                        "RETURNING id::text",
                        (model_type, machine_id, json.dumps(params or {})))
            job_id = cur.fetchone()[0]
        conn.close()
        self.r.lpush(f"{self.p}:queue:default", job_id)
        return job_id

    def cancel(self, job_id):
        if self.api:
            resp = requests.post(f"{self.api.base}/api/v1/jobs/{job_id}/cancel", timeout=10)
            assert resp.status_code in (200, 202), resp.text
            return
        with psycopg2.connect(self.dsn) as conn, conn.cursor() as cur:
            cur.execute("UPDATE model_training_history SET training_status = 'cancelled', "
                        "training_end = now(), cancel_requested_at = now(), stage = 'cancelled', "
                        "error_message = 'cancelled by request' WHERE id = %s "
                        "AND training_status IN ('pending', 'running')", (job_id,))
        conn.close()
        self.r.set(f"{self.p}:cancel:{job_id}", "1", ex=3600)

    def processing(self):
        return {k: v for k, v in processing_lists(self.r, self.p).items() if v}

    def worker_state(self, wid):
        return self.r.hget(f"{self.p}:worker:{wid}", "state")


@pytest.fixture
def pipe(migrated_db, redis_url, spawn):
    add_machine(migrated_db, MACHINE)
    env = pipeline_env(migrated_db, redis_url)
    r = redis_client(redis_url)
    ctx = Pipe(migrated_db, env, r, spawn)
    if API_READY:
        ctx.api = start_api(spawn, env)
    yield ctx
    # Every worker stops cleanly on SIGTERM: exit 0, no sanitizer report
    # (ASAN_OPTIONS makes a leak exit 86).
    for w in ctx.workers:
        rc = w.stop()
        out = w.output()
        assert rc == 0 and "Sanitizer" not in out, f"worker exit {rc}:\n{out[-3000:]}"
    for key in r.scan_iter(f"{ctx.p}:*"):
        r.delete(key)


def wait_for(predicate, timeout=15.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


def transitions(dsn, job_id):
    return [(f, t) for f, t, _, _ in events_of(dsn, job_id)]


def completions(dsn, job_id):
    return sum(1 for _, t, _, _ in events_of(dsn, job_id) if t == "completed")


def test_probe_completes_with_progress_and_one_completion(pipe):
    sub = pipe.r.pubsub()
    sub.subscribe(f"{pipe.p}:events")
    pipe.worker("wp-ok")
    job = pipe.job(params={"steps": 8, "step_ms": 100})
    row = wait_status(pipe.dsn, job, ("completed", "failed"), timeout=30)
    assert row["status"] == "completed", row
    assert row["progress"] == 100 and row["attempts"] == 1 and row["worker_id"] == "wp-ok"
    assert transitions(pipe.dsn, job) == [(None, "pending"), ("pending", "running"),
                                          ("running", "completed")]
    assert completions(pipe.dsn, job) == 1
    metrics = pg_metrics(pipe.dsn, job)
    assert metrics == {"steps": 8, "probe": True}
    # Redis is cleaned up after PostgreSQL: nothing held, no lease, live hash final.
    wait_for(lambda: not pipe.processing(), timeout=5)
    assert not pipe.r.exists(f"{pipe.p}:lease:{job}")
    live = pipe.r.hgetall(f"{pipe.p}:job:{job}")
    assert live["status"] == "completed" and live["progress"] == "100", live
    assert 0 < pipe.r.ttl(f"{pipe.p}:job:{job}") <= 3600
    wait_for(lambda: pipe.worker_state("wp-ok") == "idle", timeout=5)
    # Events: started, some progress (throttled), one completion from the worker.
    seen = []
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        msg = sub.get_message(timeout=0.2)
        if msg and msg["type"] == "message":
            ev = json.loads(msg["data"])
            if ev["job_id"] == job and ev.get("worker_id") == "wp-ok":
                seen.append(ev)
    names = [e["event"] for e in seen]
    assert names[0] == "training.started" and names.count("training.completed") == 1, names
    progress = [e["progress_pct"] for e in seen if e["event"] == "training.progress"]
    assert progress and progress == sorted(progress), progress
    # At most four progress events a second: 8 steps of 100 ms give at most ~5.
    assert len(progress) <= 6, progress


def pg_metrics(dsn, job_id):
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT training_metrics FROM model_training_history WHERE id = %s",
                    (job_id,))
        value = cur.fetchone()[0]
    conn.close()
    return value


def test_fail_at_fails_with_message(pipe):
    pipe.worker("wp-fail")
    job = pipe.job(params={"steps": 5, "step_ms": 20, "fail_at": 3})
    row = wait_status(pipe.dsn, job, ("completed", "failed"))
    assert row["status"] == "failed" and row["error_message"] == "probe failed at step 3", row
    wait_for(lambda: not pipe.processing(), timeout=5)
    assert pipe.r.hget(f"{pipe.p}:job:{job}", "error") == "probe failed at step 3"


def test_bad_probe_params_fail_at_once(pipe):
    # The API refuses these with 400; the worker must not trust that alone.
    pipe.worker("wp-bad")
    job = pipe.job_sql(params={"steps": 0})
    row = wait_status(pipe.dsn, job, ("completed", "failed"))
    assert row["status"] == "failed" and "steps" in row["error_message"], row
    job = pipe.job_sql(params={"stpes": 3})
    row = wait_status(pipe.dsn, job, ("completed", "failed"))
    assert row["status"] == "failed" and "unknown probe parameter" in row["error_message"], row


def test_training_without_readings_fails_at_once_with_the_reason(pipe):
    """A permanent failure (no data) fails the job on its first attempt, with
    the trainer's message, and is not retried."""
    pipe.worker("wp-base")
    job = pipe.job(model_type="baseline")
    row = wait_status(pipe.dsn, job, ("completed", "failed"))
    assert row["status"] == "failed", row
    assert "insufficient data" in row["error_message"], row
    assert row["attempts"] == 1, row
    wait_for(lambda: not pipe.processing(), timeout=5)


def test_cancel_of_running_job_stops_within_a_second(pipe):
    wid = "wp-cancel"
    worker = pipe.worker(wid)
    job = pipe.job(params={"steps": 100, "step_ms": 100})
    wait_status(pipe.dsn, job, "running", timeout=20)
    wait_for(lambda: (job_row(pipe.dsn, job)["progress"] or 0) > 0
             or int(pipe.r.hget(f"{pipe.p}:job:{job}", "progress") or 0) > 0, timeout=10)
    t0 = time.monotonic()
    pipe.cancel(job)
    # The worker has stopped when it let go of the job: its processing list
    # is empty and its registry hash says idle.
    wait_for(lambda: not pipe.processing() and pipe.worker_state(wid) == "idle", timeout=5,
             step=0.01)
    stopped_after = time.monotonic() - t0
    assert stopped_after < 1.0, f"worker stopped {stopped_after:.2f} s after the cancel"
    row = job_row(pipe.dsn, job)
    assert row["status"] == "cancelled", row
    assert row["progress"] < 100
    assert completions(pipe.dsn, job) == 0
    assert not pipe.r.exists(f"{pipe.p}:lease:{job}")
    assert "stopping attempt 1: cancel" in worker.output()
    # The worker goes on serving.
    job2 = pipe.job(params={"steps": 2, "step_ms": 10})
    assert wait_status(pipe.dsn, job2, ("completed", "failed"))["status"] == "completed"


def test_timeout_fails_the_job(pipe):
    pipe.worker("wp-timeout", ENMS_JOB_TIMEOUT_S=10)
    job = pipe.job(params={"steps": 200, "step_ms": 100})
    t0 = time.monotonic()
    row = wait_status(pipe.dsn, job, ("completed", "failed", "cancelled"), timeout=25)
    elapsed = time.monotonic() - t0
    assert row["status"] == "failed" and row["error_message"] == "timed out after 10 s", row
    assert 9.5 < elapsed < 14, elapsed
    wait_for(lambda: not pipe.processing(), timeout=5)


def test_hang_ends_by_timeout_and_the_worker_goes_on(pipe):
    wid = "wp-hang"
    worker = pipe.worker(wid, ENMS_JOB_TIMEOUT_S=10)
    job = pipe.job(params={"steps": 10, "step_ms": 50, "hang_at": 2})
    wait_status(pipe.dsn, job, "running", timeout=20)
    # Live but stuck: the heartbeat keeps beating while training does nothing.
    time.sleep(3)
    beat = pipe.r.hget(f"{pipe.p}:worker:{wid}", "last_beat")
    assert pipe.r.exists(f"{pipe.p}:lease:{job}")
    row = wait_status(pipe.dsn, job, ("completed", "failed", "cancelled"), timeout=25)
    assert row["status"] == "failed" and row["error_message"] == "timed out after 10 s", row
    assert beat is not None
    wait_for(lambda: not pipe.processing(), timeout=5)
    # The stuck thread is disposed of by replacing the process image: same
    # pid, still serving.
    job2 = pipe.job(params={"steps": 2, "step_ms": 10})
    assert wait_status(pipe.dsn, job2, ("completed", "failed"), timeout=20)["status"] == \
        "completed"
    assert worker.proc.poll() is None
    assert "restarting the worker process" in worker.output()
    assert completions(pipe.dsn, job) == 0


def test_sigterm_with_enough_grace_lets_the_job_complete(pipe):
    worker = pipe.worker("wp-grace", ENMS_SHUTDOWN_GRACE_S=20)
    job = pipe.job(params={"steps": 20, "step_ms": 100})
    wait_status(pipe.dsn, job, "running", timeout=20)
    time.sleep(0.3)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=20) == 0, worker.output()
    row = job_row(pipe.dsn, job)
    assert row["status"] == "completed" and row["attempts"] == 1, row
    assert not pipe.processing()
    assert not pipe.r.sismember(f"{pipe.p}:workers", "wp-grace")


def test_sigterm_without_grace_hands_the_job_to_another_worker_at_once(pipe):
    first = pipe.worker("wp-first", ENMS_SHUTDOWN_GRACE_S=1)
    job = pipe.job(params={"steps": 60, "step_ms": 100})
    wait_status(pipe.dsn, job, "running", timeout=20)
    assert job_row(pipe.dsn, job)["worker_id"] == "wp-first"
    # The second worker starts only now, so it cannot have taken the job first.
    pipe.worker("wp-second")
    wait_for(lambda: pipe.worker_state("wp-second") == "idle", timeout=10)
    t0 = time.monotonic()
    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(timeout=10) == 0, first.output()
    wait_for(lambda: job_row(pipe.dsn, job)["worker_id"] == "wp-second"
             and job_row(pipe.dsn, job)["status"] == "running", timeout=10)
    taken_after = time.monotonic() - t0
    # Grace 1 s + the hand-back; the lease TTL is 3 s, so well before expiry.
    assert taken_after < 2.5, taken_after
    row = wait_status(pipe.dsn, job, ("completed", "failed"), timeout=30)
    assert row["status"] == "completed" and row["attempts"] == 2, row
    assert transitions(pipe.dsn, job) == [
        (None, "pending"), ("pending", "running"), ("running", "pending"),
        ("pending", "running"), ("running", "completed")]
    assert completions(pipe.dsn, job) == 1
    wait_for(lambda: not pipe.processing(), timeout=5)


def test_duplicate_push_of_a_running_job_runs_it_once(pipe):
    pipe.worker("wp-dup-a")
    pipe.worker("wp-dup-b")
    job = pipe.job(params={"steps": 20, "step_ms": 100})
    wait_status(pipe.dsn, job, "running", timeout=20)
    pipe.r.lpush(f"{pipe.p}:queue:default", job)
    pipe.r.lpush(f"{pipe.p}:queue:default", job)
    row = wait_status(pipe.dsn, job, ("completed", "failed"), timeout=30)
    assert row["status"] == "completed" and row["attempts"] == 1, row
    assert [t for _, t in transitions(pipe.dsn, job)].count("running") == 1
    assert completions(pipe.dsn, job) == 1
    wait_for(lambda: not pipe.processing() and
             pipe.r.llen(f"{pipe.p}:queue:default") == 0, timeout=5)


def test_stale_attempt_cannot_complete(pipe):
    # A long heartbeat interval: the worker learns nothing before its probe
    # ends, so only the compare-and-set on the attempt stands in its way.
    wid = "wp-stale"
    worker = pipe.worker(wid, ENMS_HEARTBEAT_INTERVAL_S=5, ENMS_HEARTBEAT_TTL_S=15)
    job = pipe.job(params={"steps": 15, "step_ms": 100})
    wait_status(pipe.dsn, job, "running", timeout=20)
    # Someone decided the attempt was lost: back to pending (attempts kept),
    # lease gone, as housekeeping does it.
    with psycopg2.connect(pipe.dsn) as conn, conn.cursor() as cur:
        cur.execute("UPDATE model_training_history SET training_status = 'pending', "
                    "stage = 'requeued by test' WHERE id = %s AND training_status = 'running'",
                    (job,))
        assert cur.rowcount == 1
    conn.close()
    pipe.r.delete(f"{pipe.p}:lease:{job}")
    wait_for(lambda: "is stale; result dropped" in worker.output(), timeout=10)
    assert job_row(pipe.dsn, job)["status"] == "pending"
    # The worker let go of it; dispatched again, the next attempt completes.
    wait_for(lambda: job not in pipe.processing().get(f"{pipe.p}:processing:{wid}", []),
             timeout=5)
    pipe.r.lpush(f"{pipe.p}:queue:default", job)
    row = wait_status(pipe.dsn, job, ("completed", "failed"), timeout=30)
    assert row["status"] == "completed" and row["attempts"] == 2, row
    assert completions(pipe.dsn, job) == 1
    wait_for(lambda: not pipe.processing(), timeout=5)


def test_lost_lease_makes_the_worker_abandon(pipe):
    wid = "wp-lease"
    worker = pipe.worker(wid)
    job = pipe.job(params={"steps": 40, "step_ms": 100})
    wait_status(pipe.dsn, job, "running", timeout=20)
    with psycopg2.connect(pipe.dsn) as conn, conn.cursor() as cur:
        cur.execute("UPDATE model_training_history SET training_status = 'pending' "
                    "WHERE id = %s AND training_status = 'running'", (job,))
    conn.close()
    pipe.r.delete(f"{pipe.p}:lease:{job}")
    wait_for(lambda: "no longer holds the job; abandoned" in worker.output(), timeout=5)
    # Housekeeping (or we) dispatch it again; exactly one completion in the end.
    pipe.r.lpush(f"{pipe.p}:queue:default", job)
    row = wait_status(pipe.dsn, job, ("completed", "failed"), timeout=30)
    assert row["status"] == "completed" and row["attempts"] == 2, row
    assert completions(pipe.dsn, job) == 1


# ---- short jobs, claimed and written in batches (worker/runner.h, RUNNER_BATCH_*) ----------

def insert_many(pipe, n, params):
    """n pending jobs in one transaction (not queued yet); their ids."""
    with psycopg2.connect(pipe.dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO model_training_history (model_type, machine_id, params, reason, "
                    "stage) SELECT 'probe', %s, %s::jsonb, 'test', 'queued' "
                    "FROM generate_series(1, %s) g ORDER BY g RETURNING id::text",
                    (MACHINE, json.dumps(params), n))
        ids = [row[0] for row in cur.fetchall()]
    conn.close()
    return ids


def queue_many(pipe, n, params):
    """n pending jobs pushed in one LPUSH (the first out first), so an idle worker finds
    them all queued at once."""
    ids = insert_many(pipe, n, params)
    pipe.r.lpush(f"{pipe.p}:queue:default", *ids)
    return ids


def job_rows(dsn, ids):
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT id::text, training_status, attempts, worker_id, training_start, "
                    "training_end, training_metrics FROM model_training_history "
                    "WHERE id = ANY (%s::uuid[])", (ids,))
        rows = {r[0]: r[1:] for r in cur.fetchall()}
    conn.close()
    return rows


def test_short_jobs_start_and_complete_in_shared_statements(pipe):
    pipe.worker("wp-batch")
    # One job first: until a job has been timed the worker claims one at a time.
    first = pipe.job(params={"steps": 1, "step_ms": 0})
    assert wait_status(pipe.dsn, first, ("completed", "failed"))["status"] == "completed"
    ids = queue_many(pipe, 300, {"steps": 1, "step_ms": 0})
    wait_for(lambda: all(r[0] == "completed" for r in job_rows(pipe.dsn, ids).values()),
             timeout=60)
    rows = job_rows(pipe.dsn, ids)
    assert all(r[1] == 1 and r[2] == "wp-batch" for r in rows.values()), rows
    assert all(r[5] == {"steps": 1, "probe": True} for r in rows.values())
    # Jobs started by one statement share its transaction's now(), and so do jobs completed
    # by one: one statement per job would give 300 distinct times each.
    starts = {r[3] for r in rows.values()}
    ends = {r[4] for r in rows.values()}
    assert len(starts) <= 300 // 4, len(starts)
    assert len(ends) <= 300 // 4, len(ends)
    # Each job still ran once, was completed once, and left nothing behind in Redis.
    for job in ids[:20] + ids[-20:]:
        assert transitions(pipe.dsn, job) == [(None, "pending"), ("pending", "running"),
                                              ("running", "completed")]
    wait_for(lambda: not pipe.processing(), timeout=5)
    assert not any(pipe.r.exists(f"{pipe.p}:lease:{job}") for job in ids)
    assert pipe.r.hget(f"{pipe.p}:job:{ids[-1]}", "status") == "completed"
    counts = pipe.r.hgetall(f"{pipe.p}:stats:" + pipe.r.hget(f"{pipe.p}:worker:wp-batch", "host"))
    assert int(counts.get("probe|completed", 0)) == 301, counts


def test_a_slow_job_hands_the_rest_of_its_batch_to_other_workers(pipe):
    pipe.worker("wp-hoard")
    # Short jobs first, so the worker's next claim takes several at once.
    warm = queue_many(pipe, 20, {"steps": 1, "step_ms": 0})
    wait_for(lambda: all(r[0] == "completed" for r in job_rows(pipe.dsn, warm).values()),
             timeout=30)
    # One slow job then ten short ones, queued together: wp-hoard claims them as one batch.
    slow = insert_many(pipe, 1, {"steps": 1, "step_ms": 4000})[0]
    fast = insert_many(pipe, 10, {"steps": 1, "step_ms": 0})
    pipe.r.lpush(f"{pipe.p}:queue:default", slow, *fast)
    wait_status(pipe.dsn, slow, "running", timeout=10)
    pipe.worker("wp-other")
    # The ten do not wait for the slow one: handed back after its first watch tick, they
    # are run by the other worker while it trains.
    wait_for(lambda: all(r[0] == "completed" for r in job_rows(pipe.dsn, fast).values()),
             timeout=15)
    slow_row = job_rows(pipe.dsn, [slow])[slow]
    assert slow_row[0] == "running" and slow_row[2] == "wp-hoard", slow_row
    rows = job_rows(pipe.dsn, fast)
    assert all(r[2] == "wp-other" for r in rows.values()), rows
    # A handed-back job's attempt was never run, so its number was given back: the run
    # that completed it is attempt 1, and its history says why it went back.
    handed_back = 0
    for job in fast:
        assert rows[job][1] == 1, rows[job]
        events = events_of(pipe.dsn, job)
        if ("running", "pending") in [(f, t) for f, t, _, _ in events]:
            handed_back += 1
            assert [(f, t, a) for f, t, a, _ in events] == [
                (None, "pending", 0), ("pending", "running", 1), ("running", "pending", 0),
                ("pending", "running", 1), ("running", "completed", 1)], events
    assert handed_back >= 1
    assert wait_status(pipe.dsn, slow, ("completed", "failed"), timeout=15)["status"] == \
        "completed"
    wait_for(lambda: not pipe.processing(), timeout=5)
