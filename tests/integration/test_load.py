"""The load test's short variant (issue 8; `make load` is the 60 s run with the
normal build, docs/reliability.md has its figures).

8 s of mixed API traffic from wrk (bench/load_mix.lua through bench/load.py:
job list, machine list, metrics trend, queue status and retrain triggers)
against the sanitizer build the harness provides, while two workers train
the baseline and anomaly jobs the triggers create on seeded demo data.
Asserted: no 5xx, no socket error, only the statuses the mix can rightly get,
every kind of request sent, every job the traffic created completes once
the queue drains, and the API and workers are still up. The processes' logs
are checked by the spawn fixture (a sanitizer report fails the test). RSS
and latency are printed, never asserted: they belong to the benchmark."""
import os
import sys

from conftest import ROOT, run_ctl
from pipeline import pipeline_env, start_api, start_worker

sys.path.insert(0, os.path.join(ROOT, "bench"))
import load  # noqa: E402  (bench/load.py)

SECONDS = 8
# What the mix can rightly be answered: 200 for reads, 202 for an accepted
# trigger, 409 for a trigger while that machine's job of the type is still
# active, 404 for a trend with no metrics recorded yet.
ALLOWED = {200, 202, 404, 409}


def test_mixed_traffic_while_workers_train(migrated_db, redis_url, bin_dir, spawn):
    run_ctl(bin_dir, migrated_db, "seed", "--days", "45", check=True)
    env = pipeline_env(migrated_db, redis_url)
    api = start_api(spawn, env)
    workers = [start_worker(spawn, env, f"load-{i}") for i in (1, 2)]
    pids = {"api": api.proc.pid, **{f"worker-{i}": w.proc.pid for i, w in enumerate(workers, 1)}}

    r = load.run(api.base, migrated_db, pids, SECONDS, connections=8, threads=2)
    settled = load.wait_settled(migrated_db, r["since"], timeout=180)
    print(load.markdown(r, "tests/integration/test_load.py"))
    print("jobs once the queue drained:", settled["by_status"])

    assert r["requests"] > 100, r
    assert r["status_5xx"] == 0, r["statuses"]
    assert r["socket_errors"] == {"connect": 0, "read": 0, "write": 0, "timeout": 0}, r
    assert set(r["statuses"]) <= ALLOWED, r["statuses"]
    assert sum(r["statuses"].values()) == r["requests"], r
    # A 404 can only be a trend, a 409 only a trigger.
    assert r["statuses"].get(404, 0) <= r["sent"]["trend"], r
    assert r["statuses"].get(409, 0) <= r["sent"]["trigger"], r
    assert set(r["sent"]) == {"jobs", "machines", "trend", "queue", "trigger"}, r["sent"]
    # The triggers were accepted and the workers trained what they queued.
    assert r["statuses"].get(202, 0) >= 2, r["statuses"]
    assert settled["by_status"].get("completed", 0) >= 2, settled
    assert set(settled["by_status"]) == {"completed"}, settled
    assert set(settled["completed_by_type"]) == {"baseline", "anomaly"}, settled
    for p in [api, *workers]:
        assert p.proc.poll() is None, f"{p.log_path} exited with {p.proc.returncode}"
    assert all(r["rss"][name] for name in pids), r["rss"]
