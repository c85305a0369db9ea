"""GET /metrics (Prometheus text format) after real jobs ran: promtool accepts
it, and every number matches the source it claims to come from: job counts
and histograms against PostgreSQL, queue and dead-letter sizes against Redis,
the workers' counters against the jobs each host's worker settled. Also: a
dependency that is down costs its families, not the scrape; and the example
alert rules and scrape configuration in docs/prometheus/ load in promtool."""
import math
import os
import re
import shutil
import subprocess
import uuid

import psycopg2
import pytest
import requests

from conftest import ROOT, free_port, pg_query
from pipeline import (MACHINE, add_machine, pipeline_env, redis_client, start_api, start_worker,
                      trigger, wait_status)

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
STATUSES = ("pending", "running", "completed", "failed", "cancelled")
MODEL_TYPES = ("baseline", "anomaly", "forecast_arima", "probe")
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def unescape(value):
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)


def parse(text):
    """[(name, {label: value}, float)] of every sample line."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = {}
        if m.group(2):
            consumed = "".join(x.group(0) for x in LABEL.finditer(m.group(2)))
            assert consumed == m.group(2), f"bad labels: {line!r}"
            labels = {k: unescape(v) for k, v in LABEL.findall(m.group(2))}
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def series(samples, name, **match):
    return {tuple(sorted(l.items())): v for n, l, v in samples
            if n == name and all(l.get(k) == want for k, want in match.items())}


def one(samples, name, **match):
    found = series(samples, name, **match)
    assert len(found) == 1, (name, match, found)
    return next(iter(found.values()))


def promtool_check(text):
    proc = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=30)
    # promtool prints lint problems (missing _total, bad units, ...) even
    # when it exits 0: any output at all is a failure here.
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), \
        proc.stdout + proc.stderr


def scrape(base):
    resp = requests.get(f"{base}/metrics", timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return resp.text


def insert_pending(dsn, queue_name):
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO model_training_history (model_type, machine_id, reason, "
                    "queue_name) VALUES ('probe', %s, 'test', %s) RETURNING id::text",
                    (MACHINE, queue_name))
        job_id = cur.fetchone()[0]
    conn.close()
    return job_id


def wait_for(predicate, timeout=20.0):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_metrics_after_real_jobs_match_postgres_and_redis(spawn, migrated_db, redis_url):
    add_machine(migrated_db, MACHINE)
    env = pipeline_env(migrated_db, redis_url)
    p = env["ENMS_REDIS_PREFIX"]
    r = redis_client(redis_url)
    tag = uuid.uuid4().hex[:6]
    hosts = {f"prom-a-{tag}": f"prom-a-{tag}-w1", f"prom-b-{tag}": f"prom-b-{tag}-w1"}
    api = start_api(spawn, env)
    for host, wid in hosts.items():
        start_worker(spawn, dict(env, ENMS_WORKER_HOST=host), wid)
    wait_for(lambda: r.scard(f"{p}:workers") == 2)

    # Real jobs to their end: three complete, one fails, one is cancelled.
    done = [trigger(api.base, params={"steps": 2, "step_ms": 20}).json()["training_job_id"]
            for _ in range(3)]
    failing = trigger(api.base, params={"steps": 3, "step_ms": 20, "fail_at": 2})
    failing = failing.json()["training_job_id"]
    long_job = trigger(api.base, params={"steps": 200, "step_ms": 100}).json()["training_job_id"]
    for job in done:
        wait_status(migrated_db, job, "completed")
    wait_status(migrated_db, failing, "failed")
    wait_status(migrated_db, long_job, "running")
    resp = requests.post(f"{api.base}/api/v1/jobs/{long_job}/cancel", timeout=10)
    assert resp.status_code in (200, 202), resp.text
    wait_status(migrated_db, long_job, "cancelled")

    # Queue state nobody will consume: a pending job in a queue no worker
    # serves, entries in an odd-named queue (the name needs escaping), and a
    # dead-letter entry.
    insert_pending(migrated_db, "prom-q")
    r.lpush(f"{p}:queue:prom-q", pg_query(migrated_db, "SELECT id::text FROM "
                                          "model_training_history WHERE queue_name = 'prom-q'")[0][0])
    odd = 'we"ird\\q'
    r.lpush(f"{p}:queue:{odd}", "x", "y")
    r.lpush(f"{p}:dead", str(uuid.uuid4()))

    # The workers count an attempt just after settling it in PostgreSQL and
    # Redis: wait until the counters caught up with the record, then compare
    # everything exactly on one scrape.
    def settled():
        samples = parse(scrape(api.base))
        ended = sum(v for (n, l, v) in samples if n == "enms_worker_jobs_total"
                    and l["outcome"] in ("completed", "failed", "cancelled"))
        return samples if ended == 5 else None
    wait_for(settled)
    text = scrape(api.base)
    promtool_check(text)
    samples = parse(text)

    assert one(samples, "enms_scrape_error", source="postgres") == 0
    assert one(samples, "enms_scrape_error", source="redis") == 0
    assert one(samples, "enms_up") == 1

    # enms_jobs: every known status x model type, equal to the table's counts.
    want = {(s, m): 0 for s in STATUSES for m in MODEL_TYPES}
    for status, model, count in pg_query(migrated_db, "SELECT training_status, model_type, "
                                         "count(*) FROM model_training_history GROUP BY 1, 2"):
        want[(status, model)] = count
    got = {(l["status"], l["model_type"]): v for n, l, v in samples if n == "enms_jobs"}
    assert got == want
    assert want[("completed", "probe")] == 3 and want[("pending", "probe")] == 1

    # Queue depths and dead letters equal LLEN.
    for queue in ("default", "prom-q", odd):
        assert one(samples, "enms_queue_depth", queue=queue) == r.llen(f"{p}:queue:{queue}")
    assert one(samples, "enms_queue_depth", queue="prom-q") == 1
    assert one(samples, "enms_queue_depth", queue=odd) == 2
    assert one(samples, "enms_dead_letter_jobs") == r.llen(f"{p}:dead") == 1
    assert one(samples, "enms_jobs_oldest_pending_age_seconds") >= 0
    assert one(samples, "enms_jobs_last_started_timestamp_seconds") == pytest.approx(
        float(pg_query(migrated_db, "SELECT extract(epoch FROM max(training_start)) "
                       "FROM model_training_history")[0][0]), abs=1e-3)

    # Workers: both alive, one per host, with a heartbeat inside the TTL.
    for host, wid in hosts.items():
        assert one(samples, "enms_workers_alive", host=host) == 1
        age = one(samples, "enms_worker_heartbeat_age_seconds", worker=wid, host=host)
        assert 0 <= age <= int(env["ENMS_HEARTBEAT_TTL_S"]) + 1
    assert one(samples, "enms_workers_lost") == 0

    # Worker counters: per host, the attempts its worker settled per the record.
    for host, wid in hosts.items():
        rows = dict(pg_query(migrated_db, "SELECT training_status, count(*) FROM "
                             "model_training_history WHERE worker_id = %s GROUP BY 1", (wid,)))
        started = pg_query(migrated_db, "SELECT COALESCE(sum(attempts), 0) FROM "
                           "model_training_history WHERE worker_id = %s", (wid,))[0][0]
        counters = {l["outcome"]: v for n, l, v in samples
                    if n == "enms_worker_jobs_total" and l["host"] == host}
        assert all(l["model_type"] == "probe" for n, l, v in samples
                   if n == "enms_worker_jobs_total" and l["host"] == host)
        for outcome in ("completed", "failed", "cancelled"):
            assert counters.get(outcome, 0) == rows.get(outcome, 0), (host, outcome, counters, rows)
        assert counters.get("started", 0) == started, (host, counters, started)
        assert counters.get("lost", 0) == 0 and counters.get("released", 0) == 0
    assert sum(v for n, l, v in samples if n == "enms_worker_jobs_total"
               and l["outcome"] == "started") == 5

    # Histograms: counts and sums equal the rows, buckets cumulative.
    def check_hist(name, labels, count, total):
        buckets = sorted(((float(l["le"]), v) for n, l, v in samples
                          if n == f"{name}_bucket" and all(l.get(k) == x
                                                           for k, x in labels.items())
                          and set(l) == set(labels) | {"le"}))
        assert buckets and buckets[-1][0] == math.inf, (name, labels)
        values = [v for _, v in buckets]
        assert values == sorted(values), (name, labels, values)
        assert one(samples, f"{name}_count", **labels) == buckets[-1][1] == count
        assert one(samples, f"{name}_sum", **labels) == pytest.approx(total, rel=1e-9, abs=1e-9)

    n, total = pg_query(migrated_db, "SELECT count(*), COALESCE(sum(GREATEST(0, extract(epoch FROM "
                        "training_start - created_at))), 0)::float8 FROM model_training_history "
                        "WHERE training_start IS NOT NULL AND model_type = 'probe'")[0]
    assert n == 5
    check_hist("enms_job_dispatch_latency_seconds", {"model_type": "probe"}, n, total)
    for status in ("completed", "failed", "cancelled"):
        n, total = pg_query(migrated_db, "SELECT count(*), COALESCE(sum("
                            "training_duration_seconds), 0)::float8 FROM model_training_history "
                            "WHERE training_duration_seconds IS NOT NULL AND model_type = 'probe' "
                            "AND training_status = %s", (status,))[0]
        assert n == {"completed": 3, "failed": 1, "cancelled": 1}[status]
        check_hist("enms_job_duration_seconds", {"model_type": "probe", "status": status}, n,
                   total)
    # Model types without jobs still have their (zero) series.
    check_hist("enms_job_duration_seconds", {"model_type": "baseline", "status": "failed"}, 0, 0)

    # The counters live where docs/queue.md says.
    assert set(r.scan_iter(f"{p}:stats:*")) == {f"{p}:stats:{h}" for h in hosts}


def test_metrics_answer_200_with_the_source_that_is_down_flagged(spawn, migrated_db, redis_url):
    add_machine(migrated_db, MACHINE)
    dead_pg = f"postgresql://enms@127.0.0.1:{free_port()}/nothing"
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    no_pg = start_api(spawn, pipeline_env(dead_pg, redis_url, ENMS_CONNECT_TIMEOUT_MS=300))
    no_redis = start_api(spawn, pipeline_env(migrated_db, dead_redis,
                                             ENMS_CONNECT_TIMEOUT_MS=300))
    for base, down, up in ((no_pg.base, "postgres", "redis"),
                           (no_redis.base, "redis", "postgres")):
        text = scrape(base)
        promtool_check(text)
        samples = parse(text)
        assert one(samples, "enms_scrape_error", source=down) == 1, text
        assert one(samples, "enms_scrape_error", source=up) == 0, text
        names = {n for n, _, _ in samples}
        pg_families = {"enms_jobs", "enms_job_duration_seconds_count"}
        redis_families = {"enms_queue_depth", "enms_dead_letter_jobs"}
        present, absent = ((redis_families, pg_families) if down == "postgres"
                           else (pg_families, redis_families))
        assert present <= names and not (absent & names), (down, names)


def test_example_alert_rules_and_scrape_config_load_in_promtool(tmp_path):
    folder = os.path.join(ROOT, "docs", "prometheus")
    rules = subprocess.run([PROMTOOL, "check", "rules", os.path.join(folder, "alerts.yml")],
                           capture_output=True, text=True, timeout=30)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    # The configuration names a token file that exists only on a real
    # Prometheus host: check it against a stand-in.
    token = tmp_path / "enms-api.token"
    token.write_text("secret\n")
    config = open(os.path.join(folder, "prometheus.yml")).read()
    assert "/etc/prometheus/enms-api.token" in config
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/etc/prometheus/enms-api.token", str(token)))
    shutil.copy(os.path.join(folder, "alerts.yml"), tmp_path / "alerts.yml")
    check = subprocess.run([PROMTOOL, "check", "config", str(tmp_path / "prometheus.yml")],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    # Every alert the docs describe is in the file.
    doc = open(os.path.join(ROOT, "docs", "metrics.md")).read()
    for name in re.findall(r"alert: (\w+)", open(os.path.join(folder, "alerts.yml")).read()):
        assert name in doc, f"{name} is not described in docs/metrics.md"
