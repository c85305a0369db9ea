"""Redis faults while jobs run (issue 8): a restart with the append-only file
on, FLUSHALL, and Redis down for an outage, against a Redis server of the
test's own (the suite's shared one is never touched) and a fresh database
on the suite's PostgreSQL.

What must hold in each: no job is lost and none completes twice (every job
PostgreSQL knows ends completed with exactly one job_events row going to
completed), the API and the workers never crash (still running at the end,
exit 0 on SIGTERM, every log line clean JSON), a trigger is always accepted
because PostgreSQL records it, and while Redis is down the reads that need it
answer 503 with a `detail` naming Redis and why.

OUTAGE_S is the outage of the suite; docs/reliability.md reports a 30 s run
of the same test (ENMS_FAULT_OUTAGE_S=30 tests/run.sh -k redis_down)."""
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import log_records
from fault_servers import (PrivateRedis, TriggerLoop, assert_503_json, assert_exactly_once,
                           assert_processes_survived, queues_empty, wait_all_completed, wait_for)
from pipeline import MACHINE, add_machine, job_row, pipeline_env, start_api, start_worker

OUTAGE_S = float(os.environ.get("ENMS_FAULT_OUTAGE_S", "8"))
PROBE = {"steps": 4, "step_ms": 100}      # about 0.4 s a job
LONG_PROBE = {"steps": 30, "step_ms": 200}  # about 6 s: outlives the 3 s lease TTL
WORKERS = 2


@pytest.fixture
def own_redis():
    server = PrivateRedis(appendonly=True)
    server.start()
    yield server
    server.close()


@pytest.fixture
def stack(own_redis, migrated_db, spawn, capsys):
    """API and WORKERS workers on the private Redis; fast heartbeats, leases
    and housekeeping (tests/integration/pipeline.py)."""
    add_machine(migrated_db, MACHINE)
    env = pipeline_env(migrated_db, own_redis.url, ENMS_IO_TIMEOUT_MS=1000,
                       ENMS_LOG_LEVEL="info")

    class Stack:
        pass

    s = Stack()
    s.redis, s.dsn, s.env, s.prefix = own_redis, migrated_db, env, env["ENMS_REDIS_PREFIX"]
    s.api = start_api(spawn, env)
    s.workers = [start_worker(spawn, env, f"rf-{i}") for i in range(WORKERS)]
    s.procs = [s.api, *s.workers]
    wait_for(lambda: len(own_redis.client.smembers(f"{s.prefix}:workers")) == WORKERS,
             "workers registered", timeout=30)

    def say(line):
        with capsys.disabled():
            print(f"\n[redis-faults] {line}", flush=True)
    s.say = say
    return s


def job_log(procs, job_id):
    """The messages every process logged about job_id, in order per process."""
    lines = []
    for p in procs:
        for rec in log_records(p.output())[0]:
            if rec.get("job_id") == job_id:
                lines.append(rec["msg"])
    return lines


def trigger_long(base):
    r = requests.post(f"{base}/api/v1/model-performance/retrain/trigger", timeout=10,
                      json={"model_type": "probe", "machine_id": MACHINE, "params": LONG_PROBE})
    assert r.status_code == 202, r.text
    return r.json()["training_job_id"]


def wait_running(s, jobs):
    """Waits until every worker runs one of jobs; returns {job: worker}."""
    def running():
        rows = {j: job_row(s.dsn, j) for j in jobs}
        held = {j: r["worker_id"] for j, r in rows.items() if r["status"] == "running"}
        return held if len(held) == WORKERS else None
    return wait_for(running, "every worker running a long job", timeout=30)


def assert_lost_and_rerun(s, held, why):
    """A job whose attempt 1 lost its lease ends completed by attempt 2, and
    the worker of attempt 1 said why it stopped."""
    for job in held:
        row = job_row(s.dsn, job)
        assert row["status"] == "completed" and row["attempts"] == 2, (job, row)
        msgs = job_log(s.workers, job)
        assert any(m.startswith("stopping attempt 1: ") and why in m for m in msgs), msgs
        assert "attempt 2 completed" in msgs, msgs


def attempts_histogram(dsn, jobs):
    hist = {}
    for j in jobs:
        a = job_row(dsn, j)["attempts"]
        hist[a] = hist.get(a, 0) + 1
    return dict(sorted(hist.items()))


def finish(s, jobs, t_fault_end):
    """The common end: all completed exactly once, Redis clean, processes fine."""
    wait_all_completed(s.dsn, jobs, timeout=120)
    done_after = time.monotonic() - t_fault_end
    status = assert_exactly_once(s.dsn, jobs)
    wait_for(lambda: queues_empty(s.redis.client, s.prefix), "queues and processing lists empty",
             timeout=30)
    assert s.redis.client.llen(f"{s.prefix}:dead") == 0
    wait_for(lambda: len(s.redis.client.smembers(f"{s.prefix}:workers")) == WORKERS,
             "workers registered again", timeout=30)
    assert_processes_survived(s.procs)
    return status, done_after


def test_redis_restart_with_aof_mid_run(stack):
    s = stack
    s.redis.client.set(f"{s.prefix}:marker", "kept by the append-only file")
    with TriggerLoop(s.api.base, MACHINE, PROBE, every=0.1) as loop:
        wait_for(lambda: len(loop.accepted()) >= 15, "15 jobs accepted", timeout=30)
        t0 = time.monotonic()
        s.redis.restart()
        t_back = time.monotonic()
        wait_for(lambda: len(loop.accepted()) >= 40, "40 jobs accepted", timeout=30)
    # PostgreSQL records every trigger: a Redis restart never refuses one.
    assert all(code == 202 for code, _ in loop.answers), \
        [a for a in loop.answers if a[0] != 202][:5]
    assert s.redis.client.get(f"{s.prefix}:marker") == "kept by the append-only file"
    jobs = loop.accepted()
    status, done_after = finish(s, jobs, t_back)
    s.say(f"restart: {len(jobs)} jobs, Redis down {t_back - t0:.2f} s, attempts "
          f"{attempts_histogram(s.dsn, jobs)}, all completed {done_after:.1f} s after it "
          f"came back; {len(status)} jobs in PostgreSQL")


def test_redis_flushall_mid_run(stack):
    s = stack
    long_jobs = [trigger_long(s.api.base) for _ in range(WORKERS)]
    held = wait_running(s, long_jobs)
    with TriggerLoop(s.api.base, MACHINE, PROBE, every=0.05) as loop:
        # Jobs queued behind two long ones running: FLUSHALL drops the
        # queue, the leases, the processing lists, the registry and the lock.
        wait_for(lambda: len(loop.accepted()) >= 20, "20 jobs accepted", timeout=30)
        s.redis.client.flushall()
        t_flush = time.monotonic()
        wait_for(lambda: len(loop.accepted()) >= 40, "40 jobs accepted", timeout=30)
    assert all(code == 202 for code, _ in loop.answers), \
        [a for a in loop.answers if a[0] != 202][:5]
    jobs = long_jobs + loop.accepted()
    status, done_after = finish(s, jobs, t_flush)
    # The running attempts learnt at their next renewal that the lease was
    # gone; housekeeping handed the jobs back and attempt 2 completed them.
    assert_lost_and_rerun(s, held, "expired or taken over")
    s.say(f"flushall: {len(jobs)} jobs, attempts {attempts_histogram(s.dsn, jobs)}, all "
          f"completed {done_after:.1f} s after the FLUSHALL")


def test_redis_down_for_an_outage(stack):
    s = stack
    base = s.api.base
    before = [trigger_long(base) for _ in range(WORKERS + 2)]
    held = wait_running(s, before)

    s.redis.stop()
    t_down = time.monotonic()
    # Reads that need Redis: 503 naming it, with the reason.
    assert_503_json(requests.get(f"{base}/readyz", timeout=10), "redis")
    assert_503_json(requests.get(f"{base}/api/v1/queue", timeout=10), "redis")
    assert_503_json(requests.get(f"{base}/api/v1/queue/dead", timeout=10), "redis")
    events = requests.get(f"{base}/api/v1/events", timeout=10, stream=True)
    try:
        assert_503_json(events, "redis")
    finally:
        events.close()
    # Reads from PostgreSQL alone still answer; a job's detail lacks only
    # its live state.
    listing = requests.get(f"{base}/api/v1/jobs", timeout=10)
    assert listing.status_code == 200, listing.text
    detail = requests.get(f"{base}/api/v1/jobs/{before[-1]}", timeout=10)
    assert detail.status_code == 200, detail.text
    assert detail.json()["live"] is None
    # Triggers are accepted and recorded as pending in PostgreSQL.
    during = []
    for _ in range(5):
        r = requests.post(f"{base}/api/v1/model-performance/retrain/trigger", timeout=10,
                          json={"model_type": "probe", "machine_id": MACHINE, "params": PROBE})
        assert r.status_code == 202, r.text
        assert r.json()["triggered"] is True and r.json()["status"] == "pending"
        job = r.json()["training_job_id"]
        assert job_row(s.dsn, job)["status"] == "pending"
        during.append(job)
    crashed = [p.log_path for p in s.procs if p.proc.poll() is not None]
    assert not crashed, crashed
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - t_down)))
    # Nothing could dispatch them while Redis was away: still pending.
    assert [job_row(s.dsn, j)["status"] for j in during] == ["pending"] * len(during)
    crashed = [p.log_path for p in s.procs if p.proc.poll() is not None]
    assert not crashed, crashed

    s.redis.start()
    t_back = time.monotonic()
    jobs = before + during
    status, done_after = finish(s, jobs, t_back)
    # The running attempts could not renew their leases for a whole TTL and
    # stopped; attempt 2 ran once Redis was back.
    assert_lost_and_rerun(s, held, "lease not renewed for a whole TTL")
    s.say(f"outage: Redis down {t_back - t_down:.1f} s, {len(jobs)} jobs ({len(during)} "
          f"triggered during it), attempts {attempts_histogram(s.dsn, jobs)}, all completed "
          f"{done_after:.1f} s after Redis returned")


def test_api_replaces_connections_redis_closed(own_redis, migrated_db, spawn):
    """Connections Redis closed while they sat idle in the API's threads
    (what a restart does to every one of them) are replaced before use, so
    no read fails on a dead connection once Redis answers again."""
    env = pipeline_env(migrated_db, own_redis.url, ENMS_HTTP_THREADS="8")
    api = start_api(spawn, env)
    url = f"{api.base}/api/v1/queue"

    def burst():
        with ThreadPoolExecutor(16) as pool:
            return list(pool.map(lambda _: requests.get(url, timeout=10).status_code, range(48)))

    assert set(burst()) == {200}
    killed = own_redis.client.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 2, killed
    codes = burst()
    assert set(codes) == {200}, codes
    assert_processes_survived([api])
