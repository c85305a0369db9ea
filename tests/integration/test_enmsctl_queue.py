"""enmsctl status, jobs, cancel and requeue against a real PostgreSQL and
Redis, with the state built by hand under the test's own Redis prefix."""
import json
import os

import pytest

from conftest import pg_query, run_ctl
from pipeline import MACHINE, add_machine, job_row, pipeline_env, redis_client
from test_housekeeping import insert_job

OTHER = "c0000000-0000-0000-0000-000000000002"


@pytest.fixture
def ctl(migrated_db, redis_url):
    add_machine(migrated_db, MACHINE)
    add_machine(migrated_db, OTHER, name="Other-2")
    env = pipeline_env(migrated_db, redis_url)
    r = redis_client(redis_url)

    class Ctx:
        pass

    c = Ctx()
    c.dsn, c.env, c.r, c.p = migrated_db, env, r, env["ENMS_REDIS_PREFIX"]
    c.run = lambda *args: run_ctl(os.environ["ENMS_BIN"], migrated_db, *args, env_extra=env)
    yield c
    for key in r.scan_iter(f"{c.p}:*"):
        r.delete(key)


def test_status_json_and_table(ctl):
    p = ctl.p
    pending = insert_job(ctl.dsn, "pending")
    running = insert_job(ctl.dsn, "running", attempts=1, worker_id="w-1", started_ago=5)
    insert_job(ctl.dsn, "failed", attempts=3)
    ctl.r.lpush(f"{p}:queue:default", pending)
    ctl.r.lpush(f"{p}:queue:bulk", pending, pending)
    ctl.r.lpush(f"{p}:dead", "00000000-0000-0000-0000-000000000000")
    ctl.r.sadd(f"{p}:workers", "w-1", "w-old")
    ctl.r.hset(f"{p}:worker:w-1", mapping={"host": "host-a", "pid": "4242", "state": "busy",
                                           "job": running, "last_beat": "0"})
    ctl.r.expire(f"{p}:worker:w-1", 30)
    ctl.r.lpush(f"{p}:processing:w-1", running)
    ctl.r.lpush(f"{p}:processing:w-stray", running)  # not in the set, still shown
    ctl.r.set(f"{p}:lock:housekeeping", "w-1", px=10000)

    proc = ctl.run("status", "--json")
    assert proc.returncode == 0, proc.stderr
    st = json.loads(proc.stdout)
    assert st["prefix"] == p
    assert {q["name"]: q["depth"] for q in st["queues"]} == {"default": 1, "bulk": 2}
    assert st["dead_letter"] == 1
    assert st["housekeeping_lock"] == "w-1"
    workers = {w["id"]: w for w in st["workers"]}
    assert set(workers) == {"w-1", "w-old", "w-stray"}
    w1 = workers["w-1"]
    assert (w1["alive"], w1["host"], w1["pid"], w1["state"], w1["job"], w1["processing"]) == \
        (True, "host-a", 4242, "busy", running, 1)
    assert w1["heartbeat_age_s"] > 1000  # last_beat 0 is long ago
    assert workers["w-old"]["state"] == "gone" and workers["w-old"]["alive"] is False
    assert workers["w-stray"]["processing"] == 1
    assert st["jobs"] == {"pending": 1, "running": 1, "completed": 0, "failed": 1,
                          "cancelled": 0}

    proc = ctl.run("status")
    assert proc.returncode == 0, proc.stderr
    for text in ("default", "bulk", "dead-letter", "w-1", "host-a", "4242", "busy", running,
                 "w-stray", "gone", "pending", "failed"):
        assert text in proc.stdout, (text, proc.stdout)


def test_status_of_an_empty_system(ctl):
    st = json.loads(ctl.run("status", "--json").stdout)
    assert st["queues"] == [{"name": "default", "depth": 0}]
    assert st["dead_letter"] == 0 and st["workers"] == [] and st["housekeeping_lock"] is None
    assert set(st["jobs"].values()) == {0}
    assert ctl.run("status", "--bogus").returncode == 2


def test_jobs_filters_limit_and_order(ctl):
    ids = [insert_job(ctl.dsn, "completed", updated_ago=100 - i) for i in range(3)]
    failed = insert_job(ctl.dsn, "failed", model_type="baseline", machine_id=OTHER)
    pending = insert_job(ctl.dsn, "pending", model_type="anomaly")

    def listed(*args):
        proc = ctl.run("jobs", "--json", *args)
        assert proc.returncode == 0, proc.stderr
        return [json.loads(line) for line in proc.stdout.splitlines()]

    everything = listed("--limit", "100")
    assert [j["id"] for j in everything] == [pending, failed, ids[2], ids[1], ids[0]]
    assert [j["id"] for j in listed("--status", "completed")] == ids[::-1]
    assert [j["id"] for j in listed("--model-type", "baseline")] == [failed]
    assert [j["id"] for j in listed("--machine-id", OTHER)] == [failed]
    assert [j["id"] for j in listed("--status=pending", "--model-type=anomaly")] == [pending]
    assert [j["id"] for j in listed("--limit", "2")] == [pending, failed]
    assert everything[0]["status"] == "pending" and everything[0]["attempts"] == 0

    table = ctl.run("jobs")
    assert table.returncode == 0 and failed in table.stdout and "STATUS" in table.stdout
    for bad in (["--status", "done"], ["--model-type", "x"], ["--machine-id", "nope"],
                ["--limit", "0"], ["--limit", "1001"], ["--limit"], ["--what"]):
        proc = ctl.run("jobs", *bad)
        assert proc.returncode == 2, (bad, proc.stdout, proc.stderr)


def test_cancel_pending_running_and_finished(ctl):
    p = ctl.p
    pending = insert_job(ctl.dsn, "pending")
    ctl.r.lpush(f"{p}:queue:default", pending)
    running = insert_job(ctl.dsn, "running", attempts=1, worker_id="w", started_ago=3)
    done = insert_job(ctl.dsn, "completed", attempts=1)
    sub = ctl.r.pubsub()
    sub.subscribe(f"{p}:events")
    sub.get_message(timeout=1)

    proc = ctl.run("cancel", pending)
    assert proc.returncode == 0, proc.stderr
    assert "pending -> cancelled" in proc.stdout
    assert job_row(ctl.dsn, pending)["status"] == "cancelled"
    assert ctl.r.llen(f"{p}:queue:default") == 0
    event = json.loads(sub.get_message(timeout=2)["data"])
    assert (event["event"], event["job_id"], event["status"]) == \
        ("training.cancelled", pending, "cancelled")

    proc = ctl.run("cancel", running)
    assert proc.returncode == 0 and "running -> cancelled" in proc.stdout
    assert ctl.r.exists(f"{p}:cancel:{running}")
    assert job_row(ctl.dsn, running)["status"] == "cancelled"

    proc = ctl.run("cancel", done)
    assert proc.returncode == 1 and "already completed" in proc.stdout
    assert job_row(ctl.dsn, done)["status"] == "completed"
    assert ctl.run("cancel", "00000000-0000-0000-0000-00000000000f").returncode == 1
    assert ctl.run("cancel", "not-a-uuid").returncode == 2
    assert ctl.run("cancel").returncode == 2
    sub.close()


def test_requeue_one_and_all_from_the_dead_letter_list(ctl):
    p = ctl.p
    first = insert_job(ctl.dsn, "failed", attempts=3)
    second = insert_job(ctl.dsn, "failed", attempts=3, queue_name="bulk")
    stale = insert_job(ctl.dsn, "completed", attempts=1)
    ctl.r.lpush(f"{p}:dead", first, second, stale, "junk")

    proc = ctl.run("requeue", first)
    assert proc.returncode == 0, proc.stderr
    row = job_row(ctl.dsn, first)
    assert (row["status"], row["attempts"], row["error_message"]) == ("pending", 0, None)
    assert ctl.r.lrange(f"{p}:queue:default", 0, -1) == [first]
    assert first not in ctl.r.lrange(f"{p}:dead", 0, -1)
    # Only failed jobs go back: the one just requeued is pending now.
    proc = ctl.run("requeue", first)
    assert proc.returncode == 1 and "not failed" in proc.stderr

    proc = ctl.run("requeue", "--all")
    assert proc.returncode == 0, proc.stderr
    assert "requeued 1, skipped 0, dropped 2" in proc.stdout
    assert job_row(ctl.dsn, second)["status"] == "pending"
    assert ctl.r.lrange(f"{p}:queue:bulk", 0, -1) == [second]
    assert job_row(ctl.dsn, stale)["status"] == "completed"
    assert ctl.r.llen(f"{p}:dead") == 0
    assert ctl.run("requeue").returncode == 2
    assert ctl.run("requeue", "nope").returncode == 2


def test_requeue_respects_the_one_active_job_rule(ctl):
    failed = insert_job(ctl.dsn, "failed", attempts=3, model_type="baseline")
    active = insert_job(ctl.dsn, "pending", model_type="baseline")
    ctl.r.lpush(f"{ctl.p}:dead", failed)

    proc = ctl.run("requeue", failed)
    assert proc.returncode == 1 and "another job" in proc.stderr
    assert job_row(ctl.dsn, failed)["status"] == "failed"
    assert ctl.r.lrange(f"{ctl.p}:dead", 0, -1) == [failed]

    proc = ctl.run("requeue", "--all")
    assert proc.returncode == 0 and "skipped 1" in proc.stdout
    assert ctl.r.lrange(f"{ctl.p}:dead", 0, -1) == [failed]
    assert pg_query(ctl.dsn, "SELECT training_status FROM model_training_history WHERE id = %s",
                    (active,)) == [("pending",)]
