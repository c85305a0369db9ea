"""Housekeeping schedules (issue 5) and the activation policy (issue 4).

Schedules: with ENMS_EVAL_INTERVAL_S / ENMS_SCORE_INTERVAL_S set, the first
housekeeping pass of a worker creates an evaluate job per active version and a
score job per machine with an active anomaly model (trigger_type 'scheduled'),
once per interval (a second worker does not repeat it); scheduled retrains
happen for a machine whose active version is older than the interval and not
for one with a fresh version. Activation policy: 'manual' never activates and
says so in the job's result, 'always' activates every new version."""
import json
import os
import time

import pytest

from conftest import ROOT, pg_query, run_ctl
from pipeline import (add_machine, pipeline_env, redis_client, start_api, start_worker, trigger,
                      wait_status)

M1 = "c0000000-0000-0000-0000-0000000000a1"
M2 = "c0000000-0000-0000-0000-0000000000a2"
HVAC = "c0000000-0000-0000-0000-000000000002"


def artifact(name):
    with open(os.path.join(ROOT, "tests", "data", f"model_artifact_{name}.json")) as f:
        return f.read()


def add_version(dsn, machine, model_type, age_s=0):
    art = artifact("anomaly" if model_type == "anomaly" else "baseline")
    return pg_query(dsn, "INSERT INTO model_versions (machine_id, model_type, version, artifact, "
                         "is_active, activated_at, created_at) VALUES (%s, %s, 1, %s, true, "
                         "now(), now() - make_interval(secs => %s)) RETURNING id::text",
                    (machine, model_type, art, age_s))[0][0]


def jobs(dsn, **where):
    sql = ("SELECT machine_id::text, model_type, job_kind, trigger_type FROM "
           "model_training_history")
    if where:
        sql += " WHERE " + " AND ".join(f"{k} = %s" for k in where)
    return sorted(pg_query(dsn, sql + " ORDER BY 1, 2, 3", tuple(where.values())))


def wait_for(fn, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.1)
    return fn()


def test_evaluate_and_score_schedules_run_at_startup_once_per_interval(migrated_db, redis_url,
                                                                       spawn):
    for m in (M1, M2):
        add_machine(migrated_db, m, name=f"sched-{m[-2:]}")
    add_version(migrated_db, M1, "baseline")
    add_version(migrated_db, M1, "anomaly")
    add_version(migrated_db, M2, "baseline")
    env = pipeline_env(migrated_db, redis_url, ENMS_EVAL_INTERVAL_S=60, ENMS_SCORE_INTERVAL_S=60)
    start_worker(spawn, env, "ws-1")
    want = sorted([(M1, "anomaly", "evaluate", "scheduled"), (M1, "anomaly", "score", "scheduled"),
                   (M1, "baseline", "evaluate", "scheduled"),
                   (M2, "baseline", "evaluate", "scheduled")])
    assert wait_for(lambda: jobs(migrated_db) == want and jobs(migrated_db)) == want
    # The machines have no readings: every job completes with nothing recorded.
    for (job_id,) in pg_query(migrated_db, "SELECT id::text FROM model_training_history"):
        st = wait_status(migrated_db, job_id, ("completed", "failed"), timeout=30)
        assert st["status"] == "completed", st
    assert pg_query(migrated_db, "SELECT count(*) FROM model_performance_metrics")[0][0] == 0
    assert pg_query(migrated_db, "SELECT count(*) FROM anomalies")[0][0] == 0
    r = redis_client(redis_url)
    p = env["ENMS_REDIS_PREFIX"]
    assert 0 < r.ttl(f"{p}:schedule:evaluate") <= 60
    assert 0 < r.ttl(f"{p}:schedule:score") <= 60
    # A second worker within the interval does not schedule again.
    start_worker(spawn, env, "ws-2")
    time.sleep(3)
    assert len(jobs(migrated_db)) == 4


def test_scheduled_retrain_for_old_version_only(migrated_db, redis_url, spawn):
    for m in (M1, M2):
        add_machine(migrated_db, m, name=f"sched-{m[-2:]}")
    add_version(migrated_db, M1, "baseline", age_s=2 * 3600)  # older than the interval
    add_version(migrated_db, M2, "baseline", age_s=60)        # fresh
    env = pipeline_env(migrated_db, redis_url, ENMS_RETRAIN_BASELINE_S=3600)
    start_worker(spawn, env, "ws-r")
    got = wait_for(lambda: jobs(migrated_db, job_kind="train"))
    assert got == [(M1, "baseline", "train", "scheduled")]
    (job_id, reason) = pg_query(migrated_db, "SELECT id::text, reason FROM model_training_history "
                                             "WHERE machine_id = %s", (M1,))[0]
    assert "scheduled retrain" in reason
    # M1 has no readings: the retrain fails (insufficient data); it is not
    # retried on every pass, and M2 is never retrained.
    wait_status(migrated_db, job_id, ("failed",), timeout=30)
    time.sleep(3)
    assert jobs(migrated_db) == [(M1, "baseline", "train", "scheduled")]


@pytest.fixture
def seeded(migrated_db, bin_dir):
    run_ctl(bin_dir, migrated_db, "seed", "--end", "2026-01-01", "--days", "45", check=True)
    return migrated_db


def train_baseline(dsn, api, days):
    resp = trigger(api.base, "baseline", HVAC, params={"days": days})
    assert resp.status_code == 202, resp.text
    job = resp.json()["training_job_id"]
    assert wait_status(dsn, job, ("completed", "failed"), timeout=120)["status"] == "completed"
    ((vid, metrics),) = pg_query(dsn, "SELECT result_version_id::text, training_metrics FROM "
                                      "model_training_history WHERE id = %s", (job,))
    return vid, metrics["performance_improvement"]


def active_ids(dsn):
    return [r[0] for r in pg_query(dsn, "SELECT id::text FROM model_versions WHERE is_active")]


def test_activation_policy_manual_never_activates(seeded, redis_url, spawn):
    env = pipeline_env(seeded, redis_url, ENMS_ACTIVATION_POLICY="manual")
    api = start_api(spawn, env)
    start_worker(spawn, env, "wp-m")
    vid, pi = train_baseline(seeded, api, 40)
    assert vid and pi["activated"] is False
    assert pi["activation_policy"] == "manual" and "manual" in pi["policy"]
    assert active_ids(seeded) == []


def test_activation_policy_always_activates_every_version(seeded, redis_url, spawn):
    env = pipeline_env(seeded, redis_url, ENMS_ACTIVATION_POLICY="always")
    api = start_api(spawn, env)
    start_worker(spawn, env, "wp-a")
    v1, pi1 = train_baseline(seeded, api, 40)
    assert pi1["activated"] is True and active_ids(seeded) == [v1]
    # The first version's stored score is made unbeatable: "better" would
    # keep it, "always" activates the new one anyway.
    pg_query(seeded, "UPDATE model_versions SET metrics = metrics || '{\"holdout_score\": 0}' "
                     "WHERE id = %s", (v1,))
    v2, pi2 = train_baseline(seeded, api, 35)
    assert pi2["activated"] is True and pi2["activation_policy"] == "always", json.dumps(pi2)
    assert active_ids(seeded) == [v2]
