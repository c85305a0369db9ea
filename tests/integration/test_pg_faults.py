"""PostgreSQL faults while jobs run (issue 8): a restart mid-run, and
PostgreSQL down for an outage, against a PostgreSQL cluster of the test's
own (the suite's shared server is never touched); Redis is the suite's, under
a prefix of the test's own.

What must hold: no job is lost and none completes twice (every job
PostgreSQL knows ends completed with exactly one job_events row going to
completed); a worker whose job finishes while PostgreSQL is down keeps the
result and its lease and writes it once PostgreSQL is back (same attempt, no
re-run); the API answers 503 with a `detail` naming PostgreSQL and why for
what needs it, and goes on serving what needs only Redis; nothing crashes
(still running, exit 0 on SIGTERM, clean JSON logs).

OUTAGE_S is the outage of the suite; docs/reliability.md reports a 30 s run
of the same test (ENMS_FAULT_OUTAGE_S=30 tests/run.sh -k pg_down)."""
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import pg_query
from fault_servers import (PrivatePostgres, TriggerLoop, assert_503_json, assert_exactly_once,
                           assert_processes_survived, queues_empty, wait_all_completed, wait_for)
from pipeline import (MACHINE, add_machine, job_row, pipeline_env, redis_client, start_api,
                      start_worker)

OUTAGE_S = float(os.environ.get("ENMS_FAULT_OUTAGE_S", "8"))
PROBE = {"steps": 4, "step_ms": 100}       # about 0.4 s a job
LONG_PROBE = {"steps": 15, "step_ms": 200}  # about 3 s: finishes during the outage
WORKERS = 2


@pytest.fixture
def own_pg(bin_dir):
    server = PrivatePostgres(bin_dir)
    yield server
    server.close()


@pytest.fixture
def stack(own_pg, redis_url, spawn, capsys):
    add_machine(own_pg.dsn, MACHINE)
    env = pipeline_env(own_pg.dsn, redis_url, ENMS_IO_TIMEOUT_MS=1000)
    r = redis_client(redis_url)

    class Stack:
        pass

    s = Stack()
    s.pg, s.dsn, s.env, s.prefix, s.r = own_pg, own_pg.dsn, env, env["ENMS_REDIS_PREFIX"], r
    s.api = start_api(spawn, env)
    s.workers = [start_worker(spawn, env, f"pf-{i}") for i in range(WORKERS)]
    s.procs = [s.api, *s.workers]
    wait_for(lambda: len(r.smembers(f"{s.prefix}:workers")) == WORKERS, "workers registered",
             timeout=30)

    def say(line):
        with capsys.disabled():
            print(f"\n[pg-faults] {line}", flush=True)
    s.say = say
    yield s
    for key in r.scan_iter(f"{s.prefix}:*"):
        r.delete(key)


def trigger(base, params):
    return requests.post(f"{base}/api/v1/model-performance/retrain/trigger", timeout=15,
                         json={"model_type": "probe", "machine_id": MACHINE, "params": params})


def finish(s, jobs, t_back):
    wait_all_completed(s.dsn, jobs, timeout=120)
    done_after = time.monotonic() - t_back
    status = assert_exactly_once(s.dsn, jobs)
    wait_for(lambda: queues_empty(s.r, s.prefix), "queues and processing lists empty",
             timeout=30)
    assert s.r.llen(f"{s.prefix}:dead") == 0
    logs = {p.log_path: p.output() for p in s.workers}
    assert_processes_survived(s.procs)
    return status, done_after, logs


def test_pg_restart_mid_run(stack):
    s = stack
    with TriggerLoop(s.api.base, MACHINE, PROBE, every=0.1) as loop:
        wait_for(lambda: len(loop.accepted()) >= 15, "15 jobs accepted", timeout=30)
        t0 = time.monotonic()
        s.pg.restart()
        t_back = time.monotonic()
        n = len(loop.accepted())
        # Served again without restarting anything.
        wait_for(lambda: len(loop.accepted()) >= n + 15, "15 jobs accepted after the restart",
                 timeout=30)
    refused = [(code, body) for code, body in loop.answers if code != 202]
    for code, body in refused:
        # A trigger that met the restart: 503 naming PostgreSQL, never a 500.
        assert code == 503, (code, body)
        assert body["detail"].startswith("postgresql unavailable: "), body
    jobs = loop.accepted()
    status, done_after, _ = finish(s, jobs, t_back)
    s.say(f"restart: {len(jobs)} jobs accepted, {len(refused)} triggers answered 503 during "
          f"the {t_back - t0:.2f} s restart, {len(status)} jobs in PostgreSQL, all completed "
          f"{done_after:.1f} s after it")


def test_pg_down_for_an_outage(stack):
    s = stack
    base = s.api.base
    before = []
    for _ in range(6):
        r = trigger(base, LONG_PROBE)
        assert r.status_code == 202, r.text
        before.append(r.json()["training_job_id"])
    wait_for(lambda: sum(job_row(s.dsn, j)["status"] == "running" for j in before) == WORKERS,
             "both workers running a job", timeout=30)
    held = {j: job_row(s.dsn, j)["worker_id"] for j in before
            if job_row(s.dsn, j)["status"] == "running"}

    s.pg.stop()
    t_down = time.monotonic()
    assert_503_json(trigger(base, PROBE), "postgresql")
    assert_503_json(requests.get(f"{base}/readyz", timeout=10), "postgresql")
    assert_503_json(requests.get(f"{base}/api/v1/jobs", timeout=10), "postgresql")
    assert_503_json(requests.get(f"{base}/api/v1/jobs/{before[0]}", timeout=10), "postgresql")
    assert_503_json(requests.get(f"{base}/api/v1/machines", timeout=10), "postgresql")
    # What needs only Redis still answers.
    queue = requests.get(f"{base}/api/v1/queue", timeout=10)
    assert queue.status_code == 200, queue.text
    # The held jobs finish while PostgreSQL is away: their workers keep the
    # results and retry the write.
    wait_for(lambda: all("final write failed" in p.output() for p in s.workers),
             "both workers retrying a final write", timeout=OUTAGE_S + 30)
    crashed = [p.log_path for p in s.procs if p.proc.poll() is not None]
    assert not crashed, crashed
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - t_down)))
    assert_503_json(trigger(base, PROBE), "postgresql")
    crashed = [p.log_path for p in s.procs if p.proc.poll() is not None]
    assert not crashed, crashed

    s.pg.start()
    t_back = time.monotonic()
    # Served again without restarting the API (the first request may still
    # meet the dead connection and answer 503; the next one reconnects).
    r = wait_for(lambda: (lambda x: x if x.status_code == 202 else None)(trigger(base, PROBE)),
                 "a trigger accepted after PostgreSQL returned", timeout=30, step=0.2)
    jobs = before + [r.json()["training_job_id"]]
    status, done_after, logs = finish(s, jobs, t_back)
    # The results held through the outage were written by the attempt that
    # produced them: no re-run, same worker.
    for job, worker in held.items():
        row = job_row(s.dsn, job)
        assert (row["attempts"], row["worker_id"]) == (1, worker), (job, row)
    retries = sum(text.count("final write failed") for text in logs.values())
    s.say(f"outage: PostgreSQL down {t_back - t_down:.1f} s, {len(held)} results held and "
          f"written after it ({retries} final-write retries logged), {len(jobs)} jobs all "
          f"completed {done_after:.1f} s after PostgreSQL returned; {len(status)} in PostgreSQL")


def test_api_replaces_connections_the_server_closed(own_pg, redis_url, spawn):
    """Connections the server ended while they sat idle in the API's threads
    (what a restart does to every one of them) are replaced before use, so
    no request fails on a dead connection once PostgreSQL answers again."""
    env = pipeline_env(own_pg.dsn, redis_url, ENMS_HTTP_THREADS="8")
    api = start_api(spawn, env)
    url = f"{api.base}/api/v1/jobs"

    def burst():
        with ThreadPoolExecutor(16) as pool:
            return list(pool.map(lambda _: requests.get(url, timeout=10).status_code, range(48)))

    assert set(burst()) == {200}
    killed = pg_query(own_pg.dsn, "SELECT count(pg_terminate_backend(pid)) FROM "
                                  "pg_stat_activity WHERE application_name = 'enms-api'")[0][0]
    assert killed >= 2, killed
    wait_for(lambda: pg_query(own_pg.dsn, "SELECT count(*) FROM pg_stat_activity WHERE "
                                          "application_name = 'enms-api'")[0][0] == 0,
             "terminated backends gone", timeout=10)
    codes = burst()
    assert set(codes) == {200}, codes
    assert_processes_survived([api])
