"""Housekeeping: lease expiry, attempts exhausted, silent timeouts, re-dispatch
and orphaned processing lists.

The first tests build the state by hand (job rows in a fresh database, Redis
keys under the test's own prefix) and run one pass with `enmsctl
housekeeping`; the last ones are the issue's acceptance scenarios with real
API and worker processes (a worker runs housekeeping in a thread)."""
import json
import os
import signal
import time

import psycopg2
import pytest

from conftest import pg_query, run_ctl
from pipeline import (MACHINE, add_machine, events_of, job_row, pipeline_env, processing_lists,
                      redis_client, start_api, start_worker, trigger, wait_for, wait_status)

def insert_job(dsn, status="pending", attempts=0, worker_id=None, started_ago=None,
               updated_ago=0, beat_ago=None, model_type="probe", machine_id=MACHINE,
               queue_name="default"):
    """A job row in the given state, with its clocks set in the past."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO model_training_history (model_type, machine_id, training_status, "
            "attempts, worker_id, training_start, heartbeat_at, created_at, updated_at, "
            "queue_name, reason) VALUES (%s, %s, %s, %s, %s, "
            "now() - %s * interval '1 second', now() - %s * interval '1 second', "
            "now() - %s * interval '1 second', now() - %s * interval '1 second', %s, 'test') "
            "RETURNING id::text",
            (model_type, machine_id, status, attempts, worker_id, started_ago, beat_ago,
             max(updated_ago, started_ago or 0), updated_ago, queue_name))
        job_id = cur.fetchone()[0]
    conn.close()
    return job_id


@pytest.fixture
def hk(migrated_db, redis_url):
    """A fresh database with the demo machine, its own Redis prefix, and a
    function running one pass through enmsctl that returns the stats."""
    add_machine(migrated_db, MACHINE)
    env = pipeline_env(migrated_db, redis_url, ENMS_MAX_ATTEMPTS=3)
    r = redis_client(redis_url)

    class Ctx:
        pass

    ctx = Ctx()
    ctx.dsn, ctx.env, ctx.r, ctx.p = migrated_db, env, r, env["ENMS_REDIS_PREFIX"]

    def run_pass(*extra, expect_rc=0):
        proc = run_ctl(os.environ["ENMS_BIN"], migrated_db, "housekeeping", "--json", *extra,
                       env_extra=env)
        assert proc.returncode == expect_rc, proc.stdout + proc.stderr
        return json.loads(proc.stdout) if expect_rc == 0 else proc

    ctx.run_pass = run_pass
    yield ctx
    for key in r.scan_iter(f"{ctx.p}:*"):
        r.delete(key)


def test_expired_lease_requeues_job_and_clears_processing_list(hk):
    p = hk.p
    job = insert_job(hk.dsn, "running", attempts=1, worker_id="w-dead", started_ago=20,
                     beat_ago=10)
    hk.r.lpush(f"{p}:processing:w-dead", job)
    sub = hk.r.pubsub()
    sub.subscribe(f"{p}:events")
    sub.get_message(timeout=1)  # the subscribe confirmation

    stats = hk.run_pass()

    assert stats == {"requeued": 1, "dead_lettered": 0, "timed_out": 0, "redispatched": 0,
                     "orphans_removed": 0}
    row = job_row(hk.dsn, job)
    assert row["status"] == "pending" and row["attempts"] == 1
    assert hk.r.lrange(f"{p}:queue:default", 0, -1) == [job]
    assert hk.r.llen(f"{p}:processing:w-dead") == 0
    assert events_of(hk.dsn, job)[-1][:2] == ("running", "pending")
    msg = pg_query(hk.dsn, "SELECT message FROM job_events WHERE job_id = %s ORDER BY id DESC "
                   "LIMIT 1", (job,))[0][0]
    assert msg == "lease expired: worker w-dead lost"
    assert hk.r.hget(f"{p}:job:{job}", "status") == "pending"
    event = sub.get_message(timeout=2)
    assert event and event["type"] == "message", event
    body = json.loads(event["data"])
    assert set(body) == {"event", "job_id", "status", "progress_pct", "stage", "model_type",
                         "machine_id", "attempt", "worker_id", "error_message", "published_at"}
    assert (body["event"], body["job_id"], body["status"], body["attempt"],
            body["worker_id"]) == ("training.requeued", job, "pending", 1, "w-dead")
    sub.close()


def test_attempts_exhausted_fails_dead_letters_and_alerts(hk):
    job = insert_job(hk.dsn, "running", attempts=3, worker_id="w-dead", started_ago=20)
    hk.r.lpush(f"{hk.p}:processing:w-dead", job)

    stats = hk.run_pass()

    assert stats["dead_lettered"] == 1 and stats["requeued"] == 0
    row = job_row(hk.dsn, job)
    assert row["status"] == "failed"
    assert row["error_message"].startswith("failed after 3 attempts: worker lost")
    assert hk.r.lrange(f"{hk.p}:dead", 0, -1) == [job]
    assert hk.r.llen(f"{hk.p}:queue:default") == 0
    assert hk.r.llen(f"{hk.p}:processing:w-dead") == 0
    alerts = pg_query(hk.dsn, "SELECT alert_type, severity, alert_details->>'job_id' "
                      "FROM model_alerts")
    assert alerts == [("training_failed", "critical", job)]
    # A second pass finds nothing left to do.
    assert sum(hk.run_pass().values()) == 0


def test_live_lease_and_just_started_job_are_left_alone(hk):
    beating = insert_job(hk.dsn, "running", attempts=1, worker_id="w1", started_ago=30,
                         beat_ago=1)
    hk.r.set(f"{hk.p}:lease:{beating}", "w1|1", px=10000)
    # Started a moment ago, lease not yet taken: the gap between jobs_start
    # and lease_acquire must not look like a lost worker.
    fresh = insert_job(hk.dsn, "running", attempts=1, worker_id="w2", started_ago=0)

    assert sum(hk.run_pass().values()) == 0
    assert job_row(hk.dsn, beating)["status"] == "running"
    assert job_row(hk.dsn, fresh)["status"] == "running"


def test_lease_of_an_older_attempt_counts_as_lost(hk):
    job = insert_job(hk.dsn, "running", attempts=2, worker_id="w2", started_ago=20)
    hk.r.set(f"{hk.p}:lease:{job}", "w1|1", px=10000)

    assert hk.run_pass()["requeued"] == 1
    assert job_row(hk.dsn, job)["status"] == "pending"


def test_silent_job_past_the_timeout_fails_with_timeout_message(hk):
    hk.env["ENMS_JOB_TIMEOUT_S"] = "10"
    job = insert_job(hk.dsn, "running", attempts=1, worker_id="w-frozen", started_ago=60,
                     beat_ago=30)
    # Past the timeout but its lease is alive: the worker's own business.
    alive = insert_job(hk.dsn, "running", attempts=1, worker_id="w-busy", started_ago=60,
                       beat_ago=0)
    hk.r.set(f"{hk.p}:lease:{alive}", "w-busy|1", px=10000)

    stats = hk.run_pass()

    assert stats["timed_out"] == 1 and stats["requeued"] == 0 and stats["dead_lettered"] == 0
    row = job_row(hk.dsn, job)
    assert row["status"] == "failed"
    assert row["error_message"].startswith("timed out after ")
    assert job_row(hk.dsn, alive)["status"] == "running"
    assert pg_query(hk.dsn, "SELECT count(*) FROM model_alerts "
                    "WHERE alert_type = 'training_failed'")[0][0] == 1


def test_pending_jobs_missing_from_redis_are_redispatched_once(hk):
    p = hk.p
    lost = insert_job(hk.dsn, "pending", updated_ago=30)
    queued = insert_job(hk.dsn, "pending", updated_ago=30)
    hk.r.lpush(f"{p}:queue:default", queued)
    claimed = insert_job(hk.dsn, "pending", updated_ago=30)  # claimed, not yet started
    hk.r.hset(f"{p}:worker:w-live", mapping={"host": "h", "pid": "1", "state": "busy"})
    hk.r.expire(f"{p}:worker:w-live", 30)
    hk.r.sadd(f"{p}:workers", "w-live")
    hk.r.lpush(f"{p}:processing:w-live", claimed)
    young = insert_job(hk.dsn, "pending", updated_ago=0)  # the API is about to push it
    other_queue = insert_job(hk.dsn, "pending", updated_ago=30, queue_name="bulk")

    stats = hk.run_pass()

    assert stats["redispatched"] == 2, stats
    assert sorted(hk.r.lrange(f"{p}:queue:default", 0, -1)) == sorted([lost, queued])
    assert hk.r.lrange(f"{p}:queue:bulk", 0, -1) == [other_queue]
    assert young not in hk.r.lrange(f"{p}:queue:default", 0, -1)
    assert hk.r.lrange(f"{p}:processing:w-live", 0, -1) == [claimed]
    # Now every pending job is in a list: nothing is pushed twice.
    assert hk.run_pass()["redispatched"] == 0


def test_processing_lists_of_gone_workers_are_cleaned(hk):
    p = hk.p
    done = insert_job(hk.dsn, "completed", attempts=1, worker_id="w-gone", started_ago=30)
    hk.r.sadd(f"{p}:workers", "w-gone", "w-alive", "w-holding")
    hk.r.lpush(f"{p}:processing:w-gone", done, "not-a-job-id")
    # A live worker's list is its own business, whatever it holds.
    hk.r.hset(f"{p}:worker:w-alive", mapping={"host": "h", "pid": "2", "state": "busy"})
    hk.r.expire(f"{p}:worker:w-alive", 30)
    hk.r.lpush(f"{p}:processing:w-alive", done)
    # A gone worker whose job still runs under it (lease alive): kept for the
    # lease step, and the worker stays in the set until the job is settled.
    running = insert_job(hk.dsn, "running", attempts=1, worker_id="w-holding", started_ago=30,
                         beat_ago=0)
    hk.r.set(f"{p}:lease:{running}", "w-holding|1", px=10000)
    hk.r.lpush(f"{p}:processing:w-holding", running)
    # A worker with neither hash nor list is simply forgotten.
    hk.r.sadd(f"{p}:workers", "w-empty")

    stats = hk.run_pass()

    assert stats["orphans_removed"] == 1, stats
    assert hk.r.lrange(f"{p}:processing:w-gone", 0, -1) == ["not-a-job-id"]
    assert hk.r.lrange(f"{p}:processing:w-alive", 0, -1) == [done]
    assert hk.r.lrange(f"{p}:processing:w-holding", 0, -1) == [running]
    assert hk.r.smembers(f"{p}:workers") == {"w-gone", "w-alive", "w-holding"}

    hk.r.delete(f"{p}:processing:w-gone")
    hk.run_pass()
    assert hk.r.smembers(f"{p}:workers") == {"w-alive", "w-holding"}


def test_pass_waits_for_the_lock_unless_forced(hk):
    hk.r.set(f"{hk.p}:lock:housekeeping", "some-worker", px=10000)
    job = insert_job(hk.dsn, "pending", updated_ago=30)

    proc = hk.run_pass(expect_rc=1)
    assert "housekeeping lock" in proc.stderr
    assert job_row(hk.dsn, job)["status"] == "pending"
    assert hk.r.llen(f"{hk.p}:queue:default") == 0

    assert hk.run_pass("--force")["redispatched"] == 1
    # A forced pass leaves the other holder's lock alone.
    assert hk.r.get(f"{hk.p}:lock:housekeeping") == "some-worker"


def test_settled_job_is_skipped_by_compare_and_set(hk):
    """A job that finished between the pass's read and its transition is not
    touched: jobs_release's compare-and-set on (status, attempt) refuses."""
    job = insert_job(hk.dsn, "running", attempts=2, worker_id="w", started_ago=20)
    with psycopg2.connect(hk.dsn) as conn, conn.cursor() as cur:
        # The same CAS housekeeping would make, as a stale attempt: no row.
        cur.execute("UPDATE model_training_history SET training_status = 'pending' "
                    "WHERE id = %s AND attempts = 1 AND training_status = 'running' "
                    "RETURNING id", (job,))
        assert cur.fetchone() is None
    conn.close()
    assert hk.run_pass()["requeued"] == 1
    assert hk.run_pass()["requeued"] == 0
    assert [e[:2] for e in events_of(hk.dsn, job)] == [(None, "running"), ("running", "pending")]


# ---- acceptance scenarios with real processes ---------------------------------------------


def worker_pid(r, prefix, worker_id):
    pid = r.hget(f"{prefix}:worker:{worker_id}", "pid")
    return int(pid) if pid else None


def test_acceptance_2_killed_worker_job_completes_elsewhere(spawn, migrated_db, redis_url):
    add_machine(migrated_db, MACHINE)
    env = pipeline_env(migrated_db, redis_url)
    p = env["ENMS_REDIS_PREFIX"]
    r = redis_client(redis_url)
    api = start_api(spawn, env)
    workers = {wid: start_worker(spawn, env, wid) for wid in ("acc2-a", "acc2-b")}
    resp = trigger(api.base, params={"steps": 60, "step_ms": 100})
    assert resp.status_code == 202, resp.text
    job = resp.json()["training_job_id"]

    row = wait_status(migrated_db, job, "running", timeout=20)
    holder = row["worker_id"]
    victim = workers[holder]
    time.sleep(0.5)  # let it make some progress
    os.kill(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait(timeout=5)
    killed_at = time.monotonic()

    row = wait_status(migrated_db, job, ("completed", "failed"), timeout=20)
    assert time.monotonic() - killed_at <= 20
    assert row["status"] == "completed", row
    assert row["attempts"] == 2
    assert row["worker_id"] != holder
    completions = [e for e in events_of(migrated_db, job) if e[1] == "completed"]
    assert len(completions) == 1
    wait_for(lambda: all(not v for v in processing_lists(r, p).values()), 10,
             "processing lists empty")


def test_acceptance_4b_job_that_always_crashes_is_dead_lettered(spawn, migrated_db, redis_url):
    add_machine(migrated_db, MACHINE)
    env = pipeline_env(migrated_db, redis_url, ENMS_MAX_ATTEMPTS=2)
    p = env["ENMS_REDIS_PREFIX"]
    r = redis_client(redis_url)
    api = start_api(spawn, env)
    workers = [start_worker(spawn, env, f"acc4b-{i}") for i in range(3)]
    resp = trigger(api.base, params={"steps": 5, "step_ms": 100, "crash_at": 1})
    assert resp.status_code == 202, resp.text
    job = resp.json()["training_job_id"]

    row = wait_status(migrated_db, job, ("failed", "completed"), timeout=45)
    assert row["status"] == "failed", row
    assert row["attempts"] == 2
    assert "failed after 2 attempts" in row["error_message"]
    # PostgreSQL first, then the dead-letter list: the push follows the commit.
    wait_for(lambda: job in r.lrange(f"{p}:dead", 0, -1), 5, "job in the dead-letter list")
    alerts = pg_query(migrated_db, "SELECT count(*) FROM model_alerts WHERE alert_type = "
                      "'training_failed' AND alert_details->>'job_id' = %s", (job,))
    assert alerts[0][0] == 1
    crashed = [w for w in workers if w.proc.poll() is not None]
    assert len(crashed) == 2, [w.output()[-2000:] for w in workers]
    assert all(w.proc.returncode == -signal.SIGKILL for w in crashed)


def test_acceptance_5_flushall_loses_no_pending_job(spawn, migrated_db, redis_url):
    add_machine(migrated_db, MACHINE)
    env = pipeline_env(migrated_db, redis_url)
    r = redis_client(redis_url)
    api = start_api(spawn, env)
    jobs = []
    for _ in range(5):
        resp = trigger(api.base, params={"steps": 2, "step_ms": 50})
        assert resp.status_code == 202, resp.text
        jobs.append(resp.json()["training_job_id"])
    assert r.llen(f"{env['ENMS_REDIS_PREFIX']}:queue:default") == 5
    r.flushall()

    start_worker(spawn, env, "acc5-w")
    for job in jobs:
        assert wait_status(migrated_db, job, ("completed", "failed"), timeout=30)["status"] \
            == "completed"
