"""Issue 8, zombie worker: a worker frozen mid-job (SIGSTOP freezes its
heartbeat too) loses the job to another worker when its lease expires; thawed
(SIGCONT), its late result is refused by the fencing token (the attempt
number in PostgreSQL), it gives the job up quietly and goes on serving.
docs/reliability.md describes what this shows."""
import json
import os
import signal

from conftest import log_records, pg_query
from pipeline import (MACHINE, add_machine, events_of, job_row, pipeline_env, processing_lists,
                      redis_client, start_api, start_worker, trigger, wait_for, wait_status)


def job_messages(proc, job):
    records, problems = log_records(proc.output())
    assert not problems, problems[:5]
    return [r["msg"] for r in records if r.get("job_id") == job]


def drain(sub):
    """Every message received on the subscription so far, decoded."""
    out = []
    while True:
        m = sub.get_message(timeout=0.5)
        if m is None:
            return out
        if m["type"] == "message":
            out.append(json.loads(m["data"]))


def test_frozen_worker_loses_the_job_and_its_late_result_is_refused(spawn, migrated_db,
                                                                    redis_url):
    add_machine(migrated_db, MACHINE)
    # heartbeat 1 s, TTL 3 s, housekeeping 1 s; info logs to read what the worker did
    env = pipeline_env(migrated_db, redis_url, ENMS_LOG_LEVEL="info")
    p = env["ENMS_REDIS_PREFIX"]
    r = redis_client(redis_url)
    sub = r.pubsub()
    sub.subscribe(f"{p}:events")
    sub.get_message(timeout=1)  # the subscribe confirmation
    api = start_api(spawn, env)
    workers = {wid: start_worker(spawn, env, wid) for wid in ("zomb-a", "zomb-b")}

    # 40 steps of 150 ms: the first attempt is frozen near its end, so that
    # once thawed it has a result (or nearly) in hand.
    resp = trigger(api.base, params={"steps": 40, "step_ms": 150})
    assert resp.status_code == 202, resp.text
    job = resp.json()["training_job_id"]
    first = wait_status(migrated_db, job, "running", timeout=20)["worker_id"]
    second = next(w for w in workers if w != first)
    zombie = workers[first]
    wait_for(lambda: int(r.hget(f"{p}:job:{job}", "progress") or 0) >= 90, 20,
             "progress reaches 90 %")
    os.kill(zombie.proc.pid, signal.SIGSTOP)
    try:
        # The lease expires, housekeeping (in the other worker) hands the
        # job back, the other worker starts attempt 2.
        row = wait_for(lambda: (lambda rw: rw if rw["attempts"] == 2 and rw["status"] == "running"
                                else None)(job_row(migrated_db, job)), 20, "attempt 2 running")
        assert row["worker_id"] == second
        assert r.get(f"{p}:lease:{job}") == f"{second}|2"
    finally:
        os.kill(zombie.proc.pid, signal.SIGCONT)

    # The thawed worker notices it lost the job and drops what it had.
    def zombie_gave_up():
        msgs = job_messages(zombie, job)
        return [m for m in msgs if "attempt 1 is stale; result dropped" in m
                or "attempt 1 no longer holds the job; abandoned" in m]
    gave_up = wait_for(zombie_gave_up, 10, "the thawed worker gives attempt 1 up")
    assert len(gave_up) == 1, gave_up
    assert zombie.proc.poll() is None, zombie.output()[-2000:]

    row = wait_status(migrated_db, job, ("completed", "failed", "cancelled"), timeout=20)
    assert row["status"] == "completed", row
    assert row["attempts"] == 2
    assert row["worker_id"] == second
    history = events_of(migrated_db, job)
    assert [e for e in history if e[1] == "completed"] == [("running", "completed", 2, second)]
    assert [(e[1], e[2], e[3]) for e in history if e[1] == "running"] == \
        [("running", 1, first), ("running", 2, second)]
    # Exactly one model-free probe result and one completion announced,
    # by attempt 2.
    done = [e for e in drain(sub) if e["job_id"] == job and e["event"] == "training.completed"]
    assert [(e["attempt"], e["worker_id"]) for e in done] == [(2, second)]
    live = r.hgetall(f"{p}:job:{job}")
    assert (live["status"], live["attempt"], live["worker"]) == ("completed", "2", second)
    assert not any(m.startswith("attempt 1 completed") for m in job_messages(zombie, job))
    assert r.llen(f"{p}:dead") == 0
    assert pg_query(migrated_db, "SELECT count(*) FROM model_alerts")[0][0] == 0
    wait_for(lambda: all(not v for v in processing_lists(r, p).values()), 10,
             "processing lists empty")
    sub.close()

    # The thawed worker goes on serving: with the other one stopped, it
    # takes the next job and completes it.
    assert workers[second].stop() == 0
    resp = trigger(api.base, params={"steps": 3, "step_ms": 50})
    assert resp.status_code == 202, resp.text
    nxt = resp.json()["training_job_id"]
    row = wait_status(migrated_db, nxt, ("completed", "failed"), timeout=20)
    assert (row["status"], row["attempts"], row["worker_id"]) == ("completed", 1, first)
    assert zombie.proc.poll() is None
    assert r.llen(f"{p}:dead") == 0
