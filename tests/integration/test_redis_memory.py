"""Bounded Redis memory (issue 8): what a finished job leaves in Redis
expires, so after thousands of jobs Redis's memory returns to where it
started.

Per job the pipeline writes a live hash <p>:job:<id> (7 days while the job is
unfinished, ENMS_JOB_DONE_TTL_S once it is final), a lease (deleted when the
job is settled) and its id in a queue and a processing list (removed); the
rest (registry, counters per host, the housekeeping lock) does not grow with
the number of jobs. The test runs JOBS probe jobs of one zero-length step
through the API and 4 workers against a Redis server of its own, with a
short finished-job TTL, and compares INFO memory's used_memory before, right
after the last job completed, and once the finished hashes have expired.

JOBS is 2,000 in the suite; docs/reliability.md reports the 10,000-job run
of the same test (ENMS_MEMORY_JOBS=10000 ENMS_MEMORY_TTL_S=60 tests/run.sh -k
redis_memory)."""
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from fault_servers import (PrivateRedis, assert_processes_survived, queues_empty, wait_for)
from pipeline import MACHINE, add_machine, pipeline_env, start_api, start_worker
from conftest import pg_query

JOBS = int(os.environ.get("ENMS_MEMORY_JOBS", "2000"))
DONE_TTL_S = int(os.environ.get("ENMS_MEMORY_TTL_S", "10"))
WARMUP_JOBS = 64
WORKERS = 4
CLIENTS = 8
# used_memory may end this much above the start. What stays is a fixed
# amount, not a per-job one: 71-118 KB measured after 2,000 and after
# 10,000 jobs alike (client buffers, a few allocator size classes). A job
# hash takes about 400 B, so anything left per job (a key, or 131 B each of
# 2,000 jobs) fails; so does any key left at all (the key count check).
MARGIN_BYTES = 256 * 1024
PROBE = {"steps": 1, "step_ms": 0}


@pytest.fixture
def own_redis():
    server = PrivateRedis(appendonly=False)
    server.start()
    yield server
    server.close()


def used_memory(r):
    info = r.info("memory")
    return info["used_memory"], info.get("mem_clients_normal", 0)


def job_keys(r, prefix):
    return sum(1 for _ in r.scan_iter(f"{prefix}:job:*", count=1000))


def trigger_many(base, n):
    url = f"{base}/api/v1/model-performance/retrain/trigger"
    body = {"model_type": "probe", "machine_id": MACHINE, "reason": "memory test",
            "params": PROBE}

    def one(_):
        r = requests.post(url, json=body, timeout=30)
        assert r.status_code == 202, r.text
        return r.json()["training_job_id"]

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(one, range(n)))


def completed(dsn):
    return pg_query(dsn, "SELECT count(*) FROM model_training_history "
                         "WHERE training_status = 'completed'")[0][0]


def test_finished_jobs_leave_nothing_in_redis(own_redis, migrated_db, spawn, capsys):
    add_machine(migrated_db, MACHINE)
    env = pipeline_env(migrated_db, own_redis.url, ENMS_IO_TIMEOUT_MS=1000,
                       ENMS_JOB_DONE_TTL_S=DONE_TTL_S)
    p, r = env["ENMS_REDIS_PREFIX"], own_redis.client
    api = start_api(spawn, env)
    workers = [start_worker(spawn, env, f"mem-{i}") for i in range(WORKERS)]
    wait_for(lambda: len(r.smembers(f"{p}:workers")) == WORKERS, "workers registered")

    # Warm-up with the same concurrency, so every connection, script and
    # per-host counter the run needs exists before the first measurement.
    trigger_many(api.base, WARMUP_JOBS)
    wait_for(lambda: completed(migrated_db) == WARMUP_JOBS, "warm-up completed", timeout=120,
             step=0.2)
    wait_for(lambda: job_keys(r, p) == 0, "warm-up hashes expired", timeout=DONE_TTL_S + 60,
             step=0.5)
    time.sleep(1)
    before, clients_before = used_memory(r)
    keys_before = r.dbsize()

    t0 = time.monotonic()
    trigger_many(api.base, JOBS)
    wait_for(lambda: completed(migrated_db) == WARMUP_JOBS + JOBS, f"{JOBS} jobs completed",
             timeout=600, step=0.5)
    run_s = time.monotonic() - t0
    after, _ = used_memory(r)
    hashes_after = job_keys(r, p)
    # Every finished job's hash carries the finished TTL, not the 7 days of
    # an unfinished one.
    ttls = [r.ttl(k) for k in r.scan_iter(f"{p}:job:*", count=1000)]
    # (-2: expired between SCAN and TTL; -1 would be a hash without a TTL.)
    bad = [t for t in ttls if t != -2 and not 0 <= t <= DONE_TTL_S]
    assert not bad, bad[:5]
    assert pg_query(migrated_db, "SELECT count(*) FROM model_training_history WHERE "
                                 "training_status <> 'completed'")[0][0] == 0
    assert queues_empty(r, p)

    wait_for(lambda: job_keys(r, p) == 0, "finished hashes expired", timeout=DONE_TTL_S + 120,
             step=0.5)
    time.sleep(1)  # a serverCron pass or two: hash tables shrink back
    end, clients_end = used_memory(r)
    keys_end = r.dbsize()
    with capsys.disabled():
        print(f"\n[redis-memory] {JOBS} jobs in {run_s:.1f} s ({WORKERS} workers, TTL "
              f"{DONE_TTL_S} s): used_memory {before} B before, {after} B after completion "
              f"({hashes_after} job hashes alive, +{after - before} B), {end} B once expired "
              f"({end - before:+d} B); keys {keys_before} -> {keys_end}; client buffers "
              f"{clients_before} -> {clients_end} B", flush=True)
    # The same keys as before (registry, counters, lock), none per job.
    assert keys_end == keys_before, (keys_before, keys_end)
    assert end - before <= MARGIN_BYTES, (before, after, end)
    assert_processes_survived([api, *workers])
