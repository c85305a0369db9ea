#!/usr/bin/python3
"""bench.py - the measuring half of `make bench` (bench/run.sh starts the
servers and calls it): dispatch of no-op probe jobs (ours, python-rq, BullMQ,
and the Redis / PostgreSQL ceilings), the HTTP API under wrk (ours and a
FastAPI + asyncpg rendering of the original trend endpoint), and the resident
memory of the processes. Each section prints a Markdown fragment to
build/bench/<section>.md and its raw figures to build/bench/<section>.json.

A benchmark, not a test: nothing here asserts; every figure is the median of
--repeats runs. Needs /usr/bin/python3 with psycopg2, redis, rq (Debian), and
wrk, redis-benchmark, pgbench, node on the PATH.

    bench/bench.py dispatch|api|models-fit [--quick] [--repeats N]

Environment (bench/run.sh sets it): ENMS_PG_DSN, ENMS_REDIS_URL, BENCH_BIN
(folder of enms-api, enms-worker, enmsctl), BENCH_DIR (scratch folder),
BENCH_PG_PORT, BENCH_REDIS_PORT.
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

import psycopg2
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BENCH_BIN", os.path.join(ROOT, "build", "bin"))
SCRATCH = os.environ.get("BENCH_DIR", "/tmp")
OUT = os.path.join(ROOT, "build", "bench")
DSN = os.environ["ENMS_PG_DSN"]
REDIS_URL = os.environ["ENMS_REDIS_URL"]
PG_PORT = os.environ["BENCH_PG_PORT"]
REDIS_PORT = os.environ["BENCH_REDIS_PORT"]
PREFIX = "{bench}"
HOST = "bench"
MACHINE = "c0000000-0000-0000-0000-000000000001"  # a demo machine (enmsctl seed)
PROBE = '{"steps":1,"step_ms":0}'  # the smallest probe: one step, no sleep
GO = "go"


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * (len(xs) - 1)))))
    return xs[k]


def fmt(x, digits=0):
    if x is None:
        return "–"
    if digits == 0:
        return "{:,.0f}".format(x)
    return "{:,.{}f}".format(x, digits)


def pg():
    c = psycopg2.connect(DSN)
    c.autocommit = True
    return c


def rds():
    return redis.Redis.from_url(REDIS_URL)


def rss_kb(pid):
    """VmRSS of pid in kB, None when it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler:
    """Samples the RSS of some pids every 50 ms in a thread; .peak[pid] kB."""

    def __init__(self, pids):
        self.pids, self.peak, self._stop = list(pids), {}, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for p in self.pids:
                r = rss_kb(p)
                if r is not None and r > self.peak.get(p, 0):
                    self.peak[p] = r
            time.sleep(0.05)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join()


def enms_env(**extra):
    env = dict(os.environ)
    env.update({
        "ENMS_REDIS_PREFIX": PREFIX, "ENMS_WORKER_HOST": HOST, "ENMS_ENABLE_PROBE": "1",
        "ENMS_LOG_LEVEL": "warn", "ENMS_EVAL_INTERVAL_S": "0", "ENMS_SCORE_INTERVAL_S": "0",
        "ENMS_RETRAIN_BASELINE_S": "0", "ENMS_RETRAIN_ANOMALY_S": "0",
        "ENMS_RETRAIN_FORECAST_S": "0", "ENMS_WEB_ROOT": os.path.join(ROOT, "web"),
        "ENMS_SCHEMA_DIR": os.path.join(ROOT, "schema"),
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_workers(n, tag="w"):
    procs = []
    for i in range(n):
        log = open(os.path.join(SCRATCH, "worker-%s%d.log" % (tag, i)), "ab")
        procs.append(subprocess.Popen([os.path.join(BIN, "enms-worker")],
                                      env=enms_env(ENMS_WORKER_ID="bench-%s%d" % (tag, i)),
                                      stdout=log, stderr=log))
    return procs


def stop(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_api(threads=16):
    port = free_port()
    log = open(os.path.join(SCRATCH, "api.log"), "ab")
    p = subprocess.Popen([os.path.join(BIN, "enms-api")],
                         env=enms_env(ENMS_HTTP_PORT=port, ENMS_HTTP_THREADS=threads),
                         stdout=log, stderr=log)
    url = "http://127.0.0.1:%d" % port
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).read()
            return p, url
        except OSError:
            time.sleep(0.05)
    stop([p])
    raise RuntimeError("enms-api did not start (see %s/api.log)" % SCRATCH)


def reset_jobs(db, r):
    with db.cursor() as c:
        c.execute("TRUNCATE model_training_history, job_events CASCADE")
    for k in r.scan_iter(match=PREFIX + ":*", count=1000):
        r.delete(k)


def insert_pending(db, r, n):
    """n pending probe jobs in one transaction, their ids pushed oldest first."""
    with db.cursor() as c:
        c.execute("INSERT INTO model_training_history (model_type, machine_id, trigger_type, "
                  "reason, triggered_by, params, queue_name, stage, job_kind) "
                  "SELECT 'probe', %s, 'manual', 'bench', 'bench', %s::jsonb, 'default', "
                  "'queued', 'train' FROM generate_series(1, %s) RETURNING id::text",
                  (MACHINE, PROBE, n))
        ids = [row[0] for row in c.fetchall()]
    pipe = r.pipeline(transaction=False)
    for i in range(0, len(ids), 1000):
        pipe.lpush(PREFIX + ":queue:default", *ids[i:i + 1000])
    pipe.execute()
    return ids


def completed_count(r):
    v = r.hget(PREFIX + ":stats:" + HOST, "probe|completed")
    return int(v or 0)


def wait_done(r, n, timeout):
    t_end = time.time() + timeout
    while completed_count(r) < n:
        if time.time() > t_end:
            return False
        time.sleep(0.005)
    return True


def commandstats(r):
    return {k.replace("cmdstat_", "").upper(): v["calls"]
            for k, v in r.info("commandstats").items()}


def pg_counters(db):
    with db.cursor() as c:
        c.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        commits = c.fetchone()[0]
        c.execute("SELECT wal_records, wal_sync, wal_bytes FROM pg_stat_wal")
        rec, sync, wbytes = c.fetchone()
    return {"commits": commits, "wal_records": rec, "wal_sync": sync, "wal_bytes": int(wbytes)}


def our_drain(db, r, n, workers, cost=False):
    """Drain n pre-queued jobs with `workers` workers; figures from the records."""
    reset_jobs(db, r)
    insert_pending(db, r, n)
    if cost:
        with db.cursor() as c:
            c.execute("SELECT pg_stat_statements_reset()")
        time.sleep(0.2)  # pg_stat_database is updated by the backends lazily
        cs0, pc0 = commandstats(r), pg_counters(db)
    t0 = time.time()
    procs = start_workers(workers)
    with RssSampler([p.pid for p in procs]) as s:
        ok = wait_done(r, n, timeout=max(60, n / 50))
    wall = time.time() - t0
    rss_peak = max(s.peak.values()) if s.peak else None
    res = {"workers": workers, "jobs": n, "drain_wall_s": wall, "ok": ok, "worker_rss_peak_kb": rss_peak}
    if cost:
        time.sleep(0.6)
        cs1, pc1 = commandstats(r), pg_counters(db)
    stop(procs)
    with db.cursor() as c:
        c.execute("SELECT count(*) FILTER (WHERE training_status = 'completed'), "
                  "extract(epoch FROM max(training_end) - min(training_start)) "
                  "FROM model_training_history")
        done, span = c.fetchone()
    res.update({"completed_in_pg": done, "drain_span_s": float(span or 0),
                "drain_per_s": done / float(span) if span else None})
    if cost:
        res["redis_cmds_per_job"] = {k: (cs1.get(k, 0) - cs0.get(k, 0)) / n for k in cs1
                                     if cs1.get(k, 0) - cs0.get(k, 0) > 0}
        res["pg_per_job"] = {k: (pc1[k] - pc0[k]) / n for k in pc1}
        with db.cursor() as c:
            c.execute("SELECT calls, total_exec_time, regexp_replace(query, '\\s+', ' ', 'g') "
                      "FROM pg_stat_statements WHERE calls >= %s ORDER BY total_exec_time DESC",
                      (n // 100,))  # a batch statement runs once per up to 32 jobs
            res["statements"] = [{"calls_per_job": c_ / n, "ms_total": t, "query": q[:160]}
                                 for c_, t, q in c.fetchall()]
    return res


def idle_latency(db, r, url, count, workers=2):
    """Jobs posted one at a time to the API with idle workers: enqueue->running
    and enqueue->completed from the records (created_at is the API's insert)."""
    reset_jobs(db, r)
    procs = start_workers(workers, tag="lat")
    time.sleep(1.0)
    body = json.dumps({"model_type": "probe", "machine_id": MACHINE,
                       "params": json.loads(PROBE)}).encode()
    import http.client
    host, port = url.replace("http://", "").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    for _ in range(count):
        conn.request("POST", "/api/v1/model-performance/retrain/trigger", body,
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        time.sleep(0.02)  # the previous job is long done: the workers are idle again
    conn.close()
    wait_done(r, count, 30)
    stop(procs)
    with db.cursor() as c:
        c.execute("SELECT extract(epoch FROM training_start - created_at) * 1000, "
                  "extract(epoch FROM training_end - created_at) * 1000 FROM model_training_history "
                  "WHERE training_status = 'completed'")
        rows = c.fetchall()
    run = [float(a) for a, _ in rows]
    comp = [float(b) for _, b in rows]
    return {"jobs": count, "measured": len(rows), "running_p50_ms": pct(run, 50),
            "running_p99_ms": pct(run, 99), "completed_p50_ms": pct(comp, 50),
            "completed_p99_ms": pct(comp, 99)}


def wrk(url, script=None, conns=16, seconds=5, threads=2, args=()):
    cmd = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "--latency"]
    if script:
        cmd += ["-s", script]
    cmd.append(url)
    if args:
        cmd += ["--"] + [str(a) for a in args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = re.search(r"(\d+) requests in", out)

    def lat(label):
        m = re.search(r"^\s+%s\s+([\d.]+)(us|ms|s)\s*$" % label, out, re.M)
        if not m:
            return None
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return {"rps": float(rps.group(1)) if rps else None,
            "requests": int(total.group(1)) if total else None,
            "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "p50_ms": lat("50%"), "p99_ms": lat("99%")}


def api_enqueue(db, r, url, seconds, repeats):
    """Probe jobs posted through the API by wrk (16 connections), no worker."""
    runs = []
    for _ in range(repeats):
        reset_jobs(db, r)
        w = wrk(url + "/api/v1/model-performance/retrain/trigger",
                os.path.join(ROOT, "bench", "wrk_probe.lua"), conns=16, seconds=seconds)
        with db.cursor() as c:
            c.execute("SELECT count(*) FROM model_training_history")
            w["jobs_in_pg"] = c.fetchone()[0]
        runs.append(w)
    return {"rps": median([x["rps"] for x in runs]), "p99_ms": median([x["p99_ms"] for x in runs]),
            "non2xx": sum(x["non2xx"] for x in runs), "runs": runs}


def direct_enqueue(db, r, n, threads):
    """Jobs written the way the API writes them (INSERT, one commit each; then
    HSET + EXPIRE + LPUSH in one pipeline), from `threads` Python clients."""
    reset_jobs(db, r)
    per = n // threads

    def client():
        d, rr = pg(), rds()
        cur = d.cursor()
        for _ in range(per):
            cur.execute("INSERT INTO model_training_history (model_type, machine_id, trigger_type,"
                        " reason, triggered_by, params, queue_name, stage, job_kind) VALUES "
                        "('probe', %s, 'manual', 'bench', 'bench', %s::jsonb, 'default', 'queued',"
                        " 'train') RETURNING id::text", (MACHINE, PROBE))
            jid = cur.fetchone()[0]
            p = rr.pipeline(transaction=False)
            p.hset(PREFIX + ":job:" + jid, mapping={"status": "pending", "progress": 0})
            p.expire(PREFIX + ":job:" + jid, 604800)
            p.lpush(PREFIX + ":queue:default", jid)
            p.execute()
        d.close()
    ts = [threading.Thread(target=client) for _ in range(threads)]
    t0 = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return per * threads / (time.time() - t0)


# ---------------------------------------------------------------- python-rq
def rq_bench(n, worker_class, workers=2):
    from rq import Queue
    import rq as rqmod
    r = rds()
    qname = "bench-rq-%d" % os.getpid()
    q = Queue(qname, connection=r)
    q.empty()
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import rq_noop
    t0 = time.time()
    jobs = [q.enqueue(rq_noop.noop) for _ in range(n)]
    enq = n / (time.time() - t0)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bench"))
    t0 = time.time()
    procs = [subprocess.Popen(["/usr/bin/python3", "-m", "rq.cli", "worker", "--burst", "--quiet",
                               "-w", worker_class, "-u", REDIS_URL, qname], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(workers)]
    for p in procs:
        p.wait(timeout=max(120, n / 20))
    wall = time.time() - t0
    pipe = r.pipeline(transaction=False)
    for j in jobs:
        pipe.hmget("rq:job:" + j.id, "started_at", "ended_at", "status")
    rows = pipe.execute()

    def ts(b):
        from datetime import datetime, timezone
        s = b.decode().rstrip("Z")
        return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp()
    starts = [ts(a) for a, b, s in rows if a and b]
    ends = [ts(b) for a, b, s in rows if a and b]
    done = sum(1 for a, b, s in rows if s == b"finished")
    span = max(ends) - min(starts) if starts else None
    q.delete(delete_jobs=True)
    return {"system": "python-rq", "version": rqmod.__version__, "worker_class": worker_class,
            "jobs": n, "completed": done, "workers": workers, "enqueue_per_s": enq,
            "drain_wall_s": wall, "drain_span_s": span,
            "drain_per_s": done / span if span else None}


def bullmq_bench(n, workers, concurrency):
    node_dir = os.path.join(ROOT, "bench", "node")
    out = subprocess.run(["node", "bullmq_bench.js", "--port", REDIS_PORT, "--jobs", str(n),
                          "--workers", str(workers), "--concurrency", str(concurrency)],
                         cwd=node_dir, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return {"system": "bullmq", "error": out.stderr[-500:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- ceilings
# One representative form of each command a job sends (keys are scratch keys).
REDIS_FORMS = {
    "HSET": ["HSET", "bench:h", "status", "running", "progress", "0"],
    "EXPIRE": ["EXPIRE", "bench:h", "100"],
    "PUBLISH": ["PUBLISH", "bench:c", '{"event":"training.progress","job_id":"x"}'],
    "SADD": ["SADD", "bench:s", "w1"],
    "HINCRBY": ["HINCRBY", "bench:h2", "probe|completed", "1"],
    "SET": ["SET", "bench:k", "w1|1", "PX", "12000"],
    "GET": ["GET", "bench:k"],
    "LPUSH": ["LPUSH", "bench:l", "x"],
    "LREM": ["LREM", "bench:l", "1", "x"],
    "BLMOVE": ["LMOVE", "bench:l", "bench:l", "RIGHT", "LEFT"],
    "EVAL": ["EVAL", "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', "
             "KEYS[1]) else return 0 end", "1", "bench:k", "w1|1"],
    "HDEL": ["HDEL", "bench:h", "job"],
    "DEL": ["DEL", "bench:k3"],
    "EXISTS": ["EXISTS", "bench:k"],
}


def redis_rate(argv, clients=2, n=100000):
    out = subprocess.run(["redis-benchmark", "-p", REDIS_PORT, "-q", "-c", str(clients), "-n",
                          str(n)] + argv, capture_output=True, text=True, timeout=300).stdout
    m = re.findall(r"([\d.]+) requests per second", out)
    return float(m[-1]) if m else None


def redis_ceiling(cmds_per_job, repeats):
    rates, per_job_s = {}, 0.0
    rates["PING"] = median([redis_rate(["PING"]) for _ in range(repeats)])
    for cmd, count in sorted(cmds_per_job.items()):
        form = REDIS_FORMS.get(cmd)
        if not form or count < 0.05:
            continue
        rates[cmd] = median([redis_rate(form) for _ in range(repeats)])
        per_job_s += count / rates[cmd]
    return {"rates": rates, "jobs_per_s": 1 / per_job_s if per_job_s else None}


PGBENCH_BATCH = 32  # jobs per transaction in bench/pgbench_batch.sql


def pgbench(script, clients, seconds):
    out = subprocess.run(["pgbench", "-h", "127.0.0.1", "-p", PG_PORT, "-U", "postgres", "-n",
                          "-M", "prepared", "-c", str(clients), "-j", str(min(clients, 2)), "-T",
                          str(seconds), "-f", script, "bench"], capture_output=True, text=True,
                         timeout=seconds + 120)
    m = re.search(r"tps = ([\d.]+)", out.stdout)
    if not m:
        sys.stderr.write(out.stderr[-800:])
    return float(m.group(1)) if m else None


def section_dispatch(a):
    db, r = pg(), rds()
    n = 1000 if a.quick else 5000
    res = {"n": n}
    # Enqueue: direct (1 and 4 clients) and through the API (wrk).
    res["direct_enqueue_1"] = median([direct_enqueue(db, r, n // 4, 1) for _ in range(a.repeats)])
    res["direct_enqueue_4"] = median([direct_enqueue(db, r, n // 2, 4) for _ in range(a.repeats)])
    api, url = start_api()
    try:
        res["api_enqueue"] = api_enqueue(db, r, url, 2 if a.quick else 5, a.repeats)
        res["latency"] = idle_latency(db, r, url, 100 if a.quick else 500)
        res["api_rss_idle_kb"] = rss_kb(api.pid)
    finally:
        stop([api])
    # Idle worker RSS: two workers started, nothing to do.
    ws = start_workers(2, tag="idle")
    time.sleep(2.0)
    res["worker_rss_idle_kb"] = max(rss_kb(p.pid) or 0 for p in ws)
    stop(ws)
    # Drain with 1, 2, 4 workers; the per-job cost from the 2-worker run.
    res["drain"] = {}
    for w in (1, 2, 4):
        runs = [our_drain(db, r, n, w, cost=(w == 2 and i == 0)) for i in range(a.repeats)]
        res["drain"][w] = {"per_s": median([x["drain_per_s"] for x in runs]),
                           "wall_s": median([x["drain_wall_s"] for x in runs]),
                           "completed": min(x["completed_in_pg"] for x in runs),
                           "rss_peak_kb": max(x["worker_rss_peak_kb"] or 0 for x in runs)}
        if w == 2:
            res["cost"] = {k: runs[0][k] for k in ("redis_cmds_per_job", "pg_per_job", "statements")}
    reset_jobs(db, r)
    # python-rq and BullMQ on the same Redis.
    rq_n = {"rq.worker.SimpleWorker": n // 2, "rq.worker.Worker": 150 if a.quick else 1000}
    res["rq"] = {}
    for cls, cnt in rq_n.items():
        runs = [rq_bench(cnt, cls) for _ in range(a.repeats)]
        res["rq"][cls] = {"per_s": median([x["drain_per_s"] for x in runs]),
                          "enqueue_per_s": median([x["enqueue_per_s"] for x in runs]),
                          "version": runs[0]["version"], "jobs": cnt,
                          "completed": min(x["completed"] for x in runs)}
    res["bullmq"] = {}
    for conc in (1, 16):
        runs = [bullmq_bench(n, 2, conc) for _ in range(a.repeats)]
        ok = [x for x in runs if "error" not in x]
        res["bullmq"][conc] = {"per_s": median([x["drain_per_s"] for x in ok]),
                               "enqueue_per_s": median([x["enqueue_per_s"] for x in ok]),
                               "version": ok[0]["version"] if ok else None,
                               "error": None if ok else runs[0]["error"]}
    # Ceilings: the Redis commands and the PostgreSQL statements one job costs.
    res["redis_ceiling"] = redis_ceiling(res["cost"]["redis_cmds_per_job"], a.repeats)
    secs = 2 if a.quick else 5
    res["pgbench"] = {}
    for name in ("pgbench_job3.sql", "pgbench_job2.sql", "pgbench_batch.sql"):
        # pgbench_batch.sql's transaction is 32 jobs
        per_tx = PGBENCH_BATCH if name == "pgbench_batch.sql" else 1
        for clients in ((4, 16) if a.quick else (2, 4, 16)):
            tps = [pgbench(os.path.join(ROOT, "bench", name), clients, secs)
                   for _ in range(a.repeats)]
            res["pgbench"]["%s/%d" % (name, clients)] = median(
                [t * per_tx for t in tps if t is not None])
    reset_jobs(db, r)
    write_dispatch(res)


def write_dispatch(res):
    d2 = res["drain"][2]["per_s"] or 0
    simple = res["rq"]["rq.worker.SimpleWorker"]
    fork = res["rq"]["rq.worker.Worker"]
    b1, b16 = res["bullmq"][1], res["bullmq"][16]
    lat = res["latency"]
    L = []
    L.append("| system (same Redis, same run) | workers | drain, jobs/s | enqueue, jobs/s | durable record |")
    L.append("|---|---|---|---|---|")
    for w in (1, 2, 4):
        L.append("| enms-worker, probe jobs | %d | %s | direct 1 client %s, 4 clients %s; API %s | PostgreSQL, every state |"
                 % (w, fmt(res["drain"][w]["per_s"]), fmt(res["direct_enqueue_1"]),
                    fmt(res["direct_enqueue_4"]), fmt(res["api_enqueue"]["rps"])))
    L.append("| python-rq %s SimpleWorker | 2 | %s | %s | none |"
             % (simple["version"], fmt(simple["per_s"]), fmt(simple["enqueue_per_s"])))
    L.append("| python-rq %s Worker (fork per job) | 2 | %s | %s | none |"
             % (fork["version"], fmt(fork["per_s"]), fmt(fork["enqueue_per_s"])))
    L.append("| BullMQ %s, concurrency 1 | 2 processes | %s | %s | none (Redis only) |"
             % (b1["version"], fmt(b1["per_s"]), fmt(b1["enqueue_per_s"])))
    L.append("| BullMQ %s, concurrency 16 | 2 processes | %s | %s | none (Redis only) |"
             % (b16["version"], fmt(b16["per_s"]), fmt(b16["enqueue_per_s"])))
    L.append("")
    L.append("Drain = jobs / (last end − first start) from each system's own job records; %s jobs "
             "per run (python-rq: %s SimpleWorker, %s forking), all queued before the workers start. "
             "API enqueue: wrk, 16 connections, p99 %s ms, %d non-2xx."
             % (fmt(res["n"]), fmt(simple["jobs"]), fmt(fork["jobs"]),
                fmt(res["api_enqueue"]["p99_ms"], 1), res["api_enqueue"]["non2xx"]))
    L.append("")
    L.append("| ratio (2 workers) | measured |")
    L.append("|---|---|")
    L.append("| ours / python-rq SimpleWorker | %s× |" % fmt(d2 / simple["per_s"] if simple["per_s"] else None, 1))
    L.append("| ours / python-rq Worker | %s× |" % fmt(d2 / fork["per_s"] if fork["per_s"] else None, 1))
    L.append("| ours / BullMQ (concurrency 1) | %s |" % fmt(d2 / b1["per_s"] if b1["per_s"] else None, 2))
    L.append("| ours / BullMQ (concurrency 16) | %s |" % fmt(d2 / b16["per_s"] if b16["per_s"] else None, 2))
    L.append("")
    L.append("Latency with 2 idle workers, %d probe jobs posted one at a time through the API "
             "(from the job's `created_at` to `training_start` / `training_end`): "
             "enqueue→running p50 %s ms, p99 %s ms; enqueue→completed p50 %s ms, p99 %s ms."
             % (lat["measured"], fmt(lat["running_p50_ms"], 2), fmt(lat["running_p99_ms"], 2),
                fmt(lat["completed_p50_ms"], 2), fmt(lat["completed_p99_ms"], 2)))
    L.append("")
    cost = res["cost"]
    rc = cost["redis_cmds_per_job"]
    L.append("**What one job costs** (2-worker drain; Redis `INFO commandstats`, "
             "`pg_stat_database`, `pg_stat_wal`, divided by the jobs): %s Redis commands (%s); "
             "%s PostgreSQL commits, %s WAL flushes (fsync), %s WAL records, %s WAL bytes."
             % (fmt(sum(rc.values()), 1),
                ", ".join("%s %s" % (k, fmt(v, 1)) for k, v in sorted(rc.items(), key=lambda kv: -kv[1])),
                fmt(cost["pg_per_job"]["commits"], 2), fmt(cost["pg_per_job"]["wal_sync"], 2),
                fmt(cost["pg_per_job"]["wal_records"], 1), fmt(cost["pg_per_job"]["wal_bytes"])))
    L.append("")
    L.append("| statement (pg_stat_statements, 2-worker drain) | calls per job | total ms |")
    L.append("|---|---|---|")
    for s in cost["statements"][:10]:
        L.append("| `%s` | %s | %s |" % (s["query"][:110].replace("|", "\\|"),
                                          fmt(s["calls_per_job"], 2), fmt(s["ms_total"], 0)))
    L.append("")
    rcl = res["redis_ceiling"]
    L.append("| ceiling | measured |")
    L.append("|---|---|")
    L.append("| redis-benchmark PING, 2 clients, no pipelining | %s commands/s |" % fmt(rcl["rates"].get("PING")))
    L.append("| redis-benchmark of one job's command mix (each command at its own rate, 2 clients) | %s jobs/s |" % fmt(rcl["jobs_per_s"]))
    for k, v in sorted(res["pgbench"].items()):
        name, clients = k.split("/")
        what = {"pgbench_job3.sql": "3 commits (insert, running, completed)",
                "pgbench_job2.sql": "2 commits (insert, completed; running kept in Redis)",
                "pgbench_batch.sql": "as job2, %d jobs per statement and commit (a batched "
                                     "dispatch's ceiling)" % PGBENCH_BATCH}[name]
        L.append("| pgbench `bench/%s`: %s, %s clients, durable | %s jobs/s |" % (name, what, clients, fmt(v)))
    write_out("dispatch", "\n".join(L), res)


def write_out(name, md, data):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name + ".md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(data, f, indent=1, default=str)
    print(md)


# ---------------------------------------------------------------- API
def seed_trend(db):
    """100 evaluations of one baseline model in the last 30 days."""
    with db.cursor() as c:
        c.execute("DELETE FROM model_performance_metrics WHERE machine_id = %s", (MACHINE,))
        c.execute("INSERT INTO model_performance_metrics (model_type, machine_id, model_version, "
                  "evaluation_date, evaluation_start, evaluation_end, sample_count, r_squared, "
                  "rmse, mae, mape, data_completeness) SELECT 'baseline', %s, 1, "
                  "now() - make_interval(hours => g * 6), now() - make_interval(hours => g * 6 + 24), "
                  "now() - make_interval(hours => g * 6), 24, 0.9 - g * 0.0005, 1 + g * 0.01, "
                  "0.8, 5 + g * 0.01, 100 FROM generate_series(1, 100) g", (MACHINE,))


def seed_trigger_machines(db, n):
    with db.cursor() as c:
        c.execute("INSERT INTO machines (id, name, type, rated_power_kw) SELECT "
                  "('b0000000-0000-0000-0000-' || lpad(to_hex(g), 12, '0'))::uuid, "
                  "'bench-' || g, 'motor', 10 FROM generate_series(0, %s - 1) g "
                  "ON CONFLICT DO NOTHING", (n,))


def start_original(port):
    env = dict(os.environ, ORIG_DSN=DSN)
    log = open(os.path.join(SCRATCH, "original.log"), "ab")
    p = subprocess.Popen(["/usr/bin/python3", "-m", "uvicorn", "original_trend:app", "--host",
                          "127.0.0.1", "--port", str(port), "--workers", "2", "--log-level",
                          "warning", "--no-access-log"],
                         cwd=os.path.join(ROOT, "bench"), env=env, stdout=log, stderr=log)
    url = "http://127.0.0.1:%d" % port
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).read()
            return p, url
        except OSError:
            time.sleep(0.1)
    stop([p])
    raise RuntimeError("the original-style trend app did not start (see %s/original.log)" % SCRATCH)


def section_api(a):
    db, r = pg(), rds()
    reset_jobs(db, r)
    seed_trend(db)
    secs = 2 if a.quick else 5
    trend_q = ("/api/v1/model-performance/metrics/trend?model_type=baseline&machine_id=%s&days=30"
               % MACHINE)
    api, url = start_api()
    res = {"rows": [], "api_rss_idle_kb": rss_kb(api.pid), "seconds": secs, "repeats": a.repeats}
    # a realistic job list: the last 1,000 probe jobs
    insert_pending(db, r, 1000)
    with urllib.request.urlopen(url + trend_q) as resp:
        res["trend_points"] = len(json.load(resp)["metrics"])
    peak = 0
    try:
        for name, path, script in (("metrics/trend (100 points)", trend_q, None),
                                   ("jobs list (default page)", "/api/v1/jobs", None),
                                   ("machines (8)", "/api/v1/machines", None)):
            for conns in (16, 64):
                with RssSampler([api.pid]) as s:
                    runs = [wrk(url + path, script, conns, secs) for _ in range(a.repeats)]
                peak = max(peak, s.peak.get(api.pid, 0))
                res["rows"].append(summ("ours", name, conns, runs))
        # trigger: every request a different machine (100,000 machines), no worker
        seed_trigger_machines(db, 100000)
        for conns in (16, 64):
            runs = []
            with RssSampler([api.pid]) as s:
                for _ in range(a.repeats):
                    reset_jobs(db, r)
                    runs.append(wrk(url + "/api/v1/model-performance/retrain/trigger",
                                    os.path.join(ROOT, "bench", "wrk_trigger.lua"), conns, secs))
            peak = max(peak, s.peak.get(api.pid, 0))
            res["rows"].append(summ("ours", "retrain/trigger (distinct machines)", conns, runs))
        res["api_rss_load_kb"] = peak
    finally:
        stop([api])
        reset_jobs(db, r)
    # the original's approach: FastAPI + asyncpg under uvicorn (2 processes)
    try:
        orig, ourl = start_original(free_port())
    except RuntimeError as e:
        res["original_error"] = str(e)
        orig = None
    if orig:
        try:
            for conns in (16, 64):
                runs = [wrk(ourl + trend_q, None, conns, secs) for _ in range(a.repeats)]
                res["rows"].append(summ("FastAPI + asyncpg (original's approach)",
                                        "metrics/trend (100 points)", conns, runs))
        finally:
            stop([orig])
    write_api(res)


def summ(system, name, conns, runs):
    return {"system": system, "endpoint": name, "conns": conns,
            "rps": median([x["rps"] for x in runs]), "p50_ms": median([x["p50_ms"] for x in runs]),
            "p99_ms": median([x["p99_ms"] for x in runs]),
            "non2xx": sum(x["non2xx"] for x in runs), "runs": runs}


def write_api(res):
    L = ["| server | endpoint | connections | requests/s | p50 ms | p99 ms | non-2xx |",
         "|---|---|---|---|---|---|---|"]
    for x in res["rows"]:
        L.append("| %s | %s | %d | %s | %s | %s | %d |" % (
            x["system"], x["endpoint"], x["conns"], fmt(x["rps"]), fmt(x["p50_ms"], 2),
            fmt(x["p99_ms"], 2), x["non2xx"]))
    ours = max([x["rps"] or 0 for x in res["rows"]
                if x["system"] == "ours" and x["endpoint"].startswith("metrics/trend")] or [0])
    orig = max([x["rps"] or 0 for x in res["rows"]
                if x["system"] != "ours" and x["endpoint"].startswith("metrics/trend")] or [0])
    L.append("")
    L.append("wrk 2 threads, %d s per run, median of %d runs; the trend answers %d points. "
             "Best trend figure: ours %s requests/s = %s× the original's quoted 138/s%s."
             % (res["seconds"], res["repeats"], res.get("trend_points", 0), fmt(ours), fmt(ours / 138.0, 1),
                ("; %s× the FastAPI + asyncpg rendering measured in this run (%s requests/s)"
                 % (fmt(ours / orig, 1), fmt(orig))) if orig else ""))
    write_out("api", "\n".join(L), res)


# ---------------------------------------------------------------- model fits
def section_models_fit(a):
    """Baseline and anomaly fits on one machine-year (8,760 h) with enmsctl fit."""
    db = pg()
    csv = os.path.join(SCRATCH, "machine-year.csv")
    with db.cursor() as c, open(csv, "w") as f:
        c.copy_expert("COPY (SELECT ts, energy_kwh, production_count, outdoor_temp_c FROM "
                      "energy_readings WHERE machine_id = '%s' ORDER BY ts) TO STDOUT WITH "
                      "(FORMAT csv, HEADER)" % MACHINE, f)
    rows = sum(1 for _ in open(csv)) - 1
    cases = [("baseline", ["--model", "baseline", "--csv", csv, "--y", "energy_kwh", "--x",
                           "production_count,outdoor_temp_c"]),
             ("anomaly", ["--model", "anomaly", "--csv", csv])]
    res = {"rows": rows, "fits": {}}
    for name, argv in cases:
        times, rss = [], []
        for _ in range(a.repeats):
            out = subprocess.run(["/usr/bin/time", "-f", "%U %e %M", os.path.join(BIN, "enmsctl"),
                                  "fit"] + argv, capture_output=True, text=True,
                                 env=enms_env(), timeout=600)
            last = out.stderr.strip().splitlines()[-1].split() if out.stderr.strip() else []
            if out.returncode != 0 or len(last) != 3:
                res["fits"][name] = {"error": out.stderr[-300:]}
                break
            times.append(float(last[1]))
            rss.append(int(last[2]))
        else:
            res["fits"][name] = {"wall_s": median(times), "max_rss_kb": max(rss)}
    # The same fits as worker jobs (the real path: readings from PostgreSQL,
    # model version written back), one worker, its RSS sampled while it trains.
    r = rds()
    reset_jobs(db, r)
    api, url = start_api()
    procs = start_workers(1, tag="train")
    time.sleep(0.5)
    res["jobs"] = {}
    try:
        with RssSampler([procs[0].pid]) as s:
            for model in ("baseline", "anomaly"):
                for _ in range(a.repeats):
                    body = json.dumps({"model_type": model, "machine_id": MACHINE,
                                       "params": {"days": 365}}).encode()
                    req = urllib.request.Request(
                        url + "/api/v1/model-performance/retrain/trigger", body,
                        {"Content-Type": "application/json"})
                    jid = json.load(urllib.request.urlopen(req))["training_job_id"]
                    with db.cursor() as c:
                        for _ in range(6000):
                            c.execute("SELECT training_status, training_duration_seconds, "
                                      "training_samples FROM model_training_history WHERE id = %s",
                                      (jid,))
                            st, dur, samples = c.fetchone()
                            if st not in ("pending", "running"):
                                break
                            time.sleep(0.05)
                    res["jobs"].setdefault(model, []).append(
                        {"status": st, "seconds": float(dur or 0), "samples": samples})
        res["worker_rss_training_kb"] = s.peak.get(procs[0].pid)
    finally:
        stop(procs + [api])
        reset_jobs(db, r)
    L = ["| model | rows (one machine-year) | `enmsctl fit` wall s | peak RSS | as a worker job: s (status) |",
         "|---|---|---|---|---|"]
    for name, v in res["fits"].items():
        if "error" in v:
            L.append("| %s | %d | failed: %s | – | – |" % (name, rows, v["error"].strip()[:80]))
            continue
        jobs = res["jobs"].get(name, [])
        L.append("| %s | %d | %s | %s MB | %s (%s) |" % (
            name, rows, fmt(v["wall_s"], 3), fmt(v["max_rss_kb"] / 1024.0, 1),
            fmt(median([j["seconds"] for j in jobs]), 3),
            ", ".join(sorted(set(j["status"] for j in jobs))) or "–"))
    L.append("")
    L.append("Worker RSS peak while training these jobs: %s MB." % fmt(
        (res.get("worker_rss_training_kb") or 0) / 1024.0, 1))
    write_out("models_fit", "\n".join(L), res)


# ---------------------------------------------------------------- profile
def cpu_ticks(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return int(parts[11]) + int(parts[12])  # utime + stime
    except OSError:
        return 0


def pids_of(name):
    out = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def section_profile(a):
    """Where a 2-worker drain spends its time: CPU share per process (from
    /proc) and a system-wide perf profile (perf record -a -g) while it runs."""
    db, r = pg(), rds()
    n = 2000 if a.quick else 20000
    reset_jobs(db, r)
    insert_pending(db, r, n)
    procs = start_workers(2, tag="prof")
    wpids = [p.pid for p in procs]
    redis_pid = int(open(os.path.join(SCRATCH, "redis", "redis.pid")).read())
    pg_pid = int(open(os.path.join(SCRATCH, "pg", "data", "postmaster.pid")).readline())
    time.sleep(0.3)

    def backends():
        out = subprocess.run(["pgrep", "-P", str(pg_pid)], capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]
    watched = {"enms-worker (2)": wpids, "redis-server": [redis_pid]}
    t_pg = {p: cpu_ticks(p) for p in backends()}
    t0 = {k: sum(cpu_ticks(p) for p in v) for k, v in watched.items()}
    c0, w0 = completed_count(r), time.time()
    perf_data = os.path.join(SCRATCH, "perf.data")
    perf = subprocess.run(["perf", "record", "-a", "-g", "-F", "1999", "-o", perf_data, "--",
                           "sleep", "3"], capture_output=True, text=True)
    c1, w1 = completed_count(r), time.time()
    hz = os.sysconf("SC_CLK_TCK")
    share = {k: (sum(cpu_ticks(p) for p in v) - t0[k]) / hz / (w1 - w0) for k, v in watched.items()}
    share["postgres (all processes)"] = sum(cpu_ticks(p) - t_pg.get(p, 0) for p in backends()) / hz / (w1 - w0)
    pg_pids = [pg_pid] + backends()
    wait_done(r, n, 300)
    stop(procs)
    rate = (c1 - c0) / (w1 - w0)
    res = {"jobs_per_s_during": rate, "cpu_share": share, "perf_rc": perf.returncode}
    L = ["During a 2-worker drain (%s jobs/s while sampled; load average %s): CPU used, in cores "
         "(2 available): %s." % (fmt(rate), open("/proc/loadavg").read().split()[0],
                                 ", ".join("%s %s" % (k, fmt(v, 2)) for k, v in share.items())),
         ""]
    if perf.returncode == 0:
        rep = subprocess.run(["perf", "report", "-i", perf_data, "--stdio", "--no-children",
                              "--sort", "comm", "-g", "none", "--percent-limit", "2"],
                             capture_output=True, text=True).stdout
        rows = [ln.strip() for ln in rep.splitlines() if re.match(r"^\s+[\d.]+%", ln)]
        res["perf_by_comm"] = rows
        L.append("`perf record -a -g` for 3 s, samples by command: " +
                 "; ".join(" ".join(x.split()) for x in rows[:8]) + ".")
        # By pid, not by command name: other enms-worker and postgres
        # processes on a shared machine must not count.
        ours = {"enms-worker": wpids, "postgres": pg_pids, "redis-server": [redis_pid]}
        for comm in ("enms-worker", "postgres", "redis-server"):
            rep = subprocess.run(["perf", "report", "-i", perf_data, "--stdio", "--no-children",
                                  "--pid", ",".join(str(x) for x in ours[comm]),
                                  "--percentage", "relative", "--sort",
                                  "dso,sym", "-g", "none"], capture_output=True, text=True).stdout
            rows = [" ".join(ln.split()) for ln in rep.splitlines()
                    if re.match(r"^\s+[\d.]+%", ln)][:10]
            res["perf_" + comm] = rows
            L.append("")
            L.append("Top symbols of our %s processes (share of their own samples): %s." % (
                comm, "; ".join(x.replace("[.] ", "").replace("[k] ", "k:") for x in rows)))
    else:
        L.append("perf record failed: %s" % perf.stderr.strip()[-200:])
    reset_jobs(db, r)
    write_out("profile", "\n".join(L), res)


# ---------------------------------------------------------------- scale
# The statements a training job sends for its readings (worker/train_models.c
# load_data, worker/readings_load.c, the labels), with one machine's window
# inlined as the worker binds it (PQexecParams plans each with its values).
WINDOW_SQL = [
    ("latest reading", "SELECT extract(epoch FROM max(ts))::bigint FROM energy_readings "
     "WHERE machine_id = '{m}'::uuid"),
    ("count of the window", "SELECT count(*) FROM energy_readings WHERE machine_id = '{m}'::uuid "
     "AND ts >= to_timestamp({a}) AND ts < to_timestamp({b})"),
    ("the window's rows (cursor)", "SELECT EXTRACT(EPOCH FROM ts)::int8, energy_kwh, "
     "production_count, outdoor_temp_c FROM energy_readings WHERE machine_id = '{m}'::uuid "
     "AND ts >= to_timestamp({a}) AND ts < to_timestamp({b}) ORDER BY ts"),
    ("labelled anomalies", "SELECT extract(epoch FROM ts_start)::bigint, extract(epoch FROM "
     "ts_end)::bigint FROM anomaly_labels WHERE machine_id = '{m}'::uuid AND is_anomaly AND "
     "source IN ('injected', 'user') AND ts_end > to_timestamp({a}) AND ts_start < "
     "to_timestamp({b}) ORDER BY ts_start"),
]


def explain_window(db, machine):
    """EXPLAIN (ANALYZE, BUFFERS) of a training job's reading queries for one
    machine: the top plan node, the index it reads and the execution time."""
    out = []
    with db.cursor() as c:
        c.execute("SELECT extract(epoch FROM max(ts))::bigint FROM energy_readings "
                  "WHERE machine_id = %s", (machine,))
        b = c.fetchone()[0] + 3600
        a = b - 365 * 86400
        for name, sql in WINDOW_SQL:
            c.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql.format(m=machine, a=a, b=b))
            doc = c.fetchone()[0]
            doc = doc[0] if isinstance(doc, list) else json.loads(doc)[0]
            nodes, stack = [], [doc["Plan"]]
            while stack:
                n = stack.pop()
                nodes.append(n)
                stack.extend(n.get("Plans", []))
            scans = ["%s on %s" % (n["Node Type"], n.get("Index Name") or n.get("Relation Name"))
                     for n in nodes if "Scan" in n["Node Type"]]
            out.append({"query": name, "top": doc["Plan"]["Node Type"], "scans": scans,
                        "rows": nodes[-1].get("Actual Rows"),
                        "buffers": doc["Plan"].get("Shared Hit Blocks", 0)
                        + doc["Plan"].get("Shared Read Blocks", 0),
                        "ms": doc.get("Execution Time")})
    return out


def clone_machines(db, upto):
    """Machines 9..upto copy a demo machine's year (scaled), in one statement; returns the
    seconds it took."""
    t0 = time.time()
    with db.cursor() as c:
        c.execute("INSERT INTO machines (id, name, type, rated_power_kw) SELECT "
                  "('a0000000-0000-0000-0000-' || lpad(to_hex(g), 12, '0'))::uuid, 'scale-' || g, "
                  "'motor', 10 FROM generate_series(9, %s) g ON CONFLICT DO NOTHING", (upto,))
        c.execute("INSERT INTO energy_readings (machine_id, ts, energy_kwh, production_count, "
                  "outdoor_temp_c) SELECT ('a0000000-0000-0000-0000-' || lpad(to_hex(g), 12, '0'))::uuid,"
                  " e.ts, e.energy_kwh * (0.8 + (g %% 41) / 100.0), e.production_count, e.outdoor_temp_c"
                  " FROM generate_series(9, %s) g JOIN energy_readings e ON e.machine_id = "
                  "('c0000000-0000-0000-0000-' || lpad(((g %% 8) + 1)::text, 12, '0'))::uuid "
                  "ON CONFLICT DO NOTHING", (upto,))
        c.execute("VACUUM ANALYZE" if db.autocommit else "ANALYZE")
        # The copy dirtied up to a GB of pages: write them now rather than let the
        # checkpointer compete with the next step's jobs.
        c.execute("CHECKPOINT")
    return time.time() - t0


def retrain_step(db, r, url, machines, k, table_machines):
    """Retrains the baseline and anomaly models of machines[:k] with 2 workers; returns the
    step's figures (wall time, per-type medians, worker RSS peak)."""
    reset_jobs(db, r)
    with db.cursor() as c:
        c.execute("TRUNCATE model_versions CASCADE")
    procs = start_workers(2, tag="scale")
    t0 = time.time()
    for mid in machines[:k]:
        for model in ("baseline", "anomaly"):
            body = json.dumps({"model_type": model, "machine_id": mid,
                               "params": {"days": 365}}).encode()
            urllib.request.urlopen(urllib.request.Request(
                url + "/api/v1/model-performance/retrain/trigger", body,
                {"Content-Type": "application/json"})).read()
    with RssSampler([p.pid for p in procs]) as smp:
        with db.cursor() as c:
            while True:
                c.execute("SELECT count(*) FROM model_training_history "
                          "WHERE training_status IN ('pending', 'running')")
                if c.fetchone()[0] == 0:
                    break
                time.sleep(0.2)
    wall = time.time() - t0
    stop(procs)
    with db.cursor() as c:
        c.execute("SELECT model_type, count(*) FILTER (WHERE training_status = 'completed'), "
                  "count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY "
                  "training_duration_seconds) FROM model_training_history GROUP BY 1")
        per = {t: {"completed": done, "jobs": n, "median_s": float(med or 0)}
               for t, done, n, med in c.fetchall()}
    with open("/proc/loadavg") as f:
        load = float(f.read().split()[0])
    step = {"machines": k, "table_machines": table_machines, "wall_s": wall, "per_type": per,
            "wall_per_job_s": wall / (2 * k), "load_1min": load,
            "worker_rss_peak_kb": max(smp.peak.values() or [0])}
    print("scale: %d of %d machines, %.1f s, %s" % (k, table_machines, wall, per), flush=True)
    return step


def section_scale(a):
    """M machines x one year hourly: seeding time, database size, then every
    machine's baseline and anomaly retrained by 2 workers, at 10, 100 and M
    machines; per-job time should not grow with the machine count. The first
    step runs with only 10 machines in the table and is repeated on the same
    10 machines once all M are there, so that the table's size is compared on
    the same jobs, minutes apart."""
    db, r = pg(), rds()
    m = a.machines
    res = {"max_machines": m, "steps": []}
    t0 = time.time()
    subprocess.run([os.path.join(BIN, "enmsctl"), "seed", "--force", "--end", "2026-01-01",
                    "--days", "365"], env=enms_env(), check=True, stdout=subprocess.DEVNULL)
    res["seed_demo_s"] = time.time() - t0
    small = min(10, m)
    res["clone_s"] = clone_machines(db, small)
    with db.cursor() as c:
        c.execute("SELECT id::text FROM machines ORDER BY (name LIKE 'scale-%%'), name")
        machines = [x[0] for x in c.fetchall()]
    api, url = start_api()
    try:
        res["steps"].append(retrain_step(db, r, url, machines, small, small))
        res["clone_s"] += clone_machines(db, m)
        with db.cursor() as c:
            c.execute("SELECT count(*), pg_database_size(current_database()) FROM energy_readings")
            res["readings"], res["db_bytes"] = c.fetchone()
            c.execute("SELECT id::text FROM machines ORDER BY (name LIKE 'scale-%%'), name")
            machines = [x[0] for x in c.fetchall()]
        res["plans"] = explain_window(db, machines[-1])
        for k in sorted(set(x for x in (small, 100, m) if x <= m)):
            res["steps"].append(retrain_step(db, r, url, machines, k, m))
        # The first machines once more, after the long run: the same jobs as the
        # first step, the big table, the database warm and settled.
        if m > small:
            res["steps"].append(retrain_step(db, r, url, machines, small, m))
    finally:
        stop([api])
    def change(a_step, b_step):
        """The per-type median change from a_step to b_step with the largest magnitude."""
        ch = [b_step["per_type"][t]["median_s"] / a_step["per_type"][t]["median_s"] - 1
              for t in a_step["per_type"] if a_step["per_type"][t]["median_s"] > 0]
        return max(ch, key=abs)

    steps = res["steps"]
    first = steps[0]
    last = max(steps, key=lambda st: st["machines"])  # every machine retrained
    res["flatness"] = change(first, last)
    # the same first machines with the big table: right after the copy, and at the end
    same = [st for st in steps[1:] if st["machines"] == first["machines"]]
    res["same_machines_change"] = change(first, same[-1]) if same else 0.0
    L = ["Seeding: `enmsctl seed` (8 demo machines, a year) %.1f s, then %s more machines copied "
         "from them by one `INSERT … SELECT` %.1f s: %s readings, database %.2f GB." % (
             res["seed_demo_s"], f"{m - 8:,}", res["clone_s"], f"{res['readings']:,}",
             res["db_bytes"] / 1e9), "",
         "| machines retrained | machines in the table | jobs (baseline + anomaly) | total s, 2 workers | wall s per job | baseline median s | anomaly median s | worker RSS peak | load (1 min) at the end |",
         "|---|---|---|---|---|---|---|---|---|"]
    for st in res["steps"]:
        pt = st["per_type"]
        L.append("| %s | %s | %d | %.1f | %.3f | %.3f | %.3f | %s MB | %.1f |" % (
            f"{st['machines']:,}", f"{st['table_machines']:,}", sum(v["jobs"] for v in pt.values()),
            st["wall_s"], st["wall_per_job_s"], pt.get("baseline", {}).get("median_s", 0),
            pt.get("anomaly", {}).get("median_s", 0), fmt(st["worker_rss_peak_kb"] / 1024.0, 1),
            st["load_1min"]))
    L.append("")
    L.append("Per-job median from %s machines (%s in the table) to %s: %+.0f %%; the same %s "
             "machines' jobs with %s machines in the table instead of %s: %+.0f %% (each the larger "
             "change of the two model types)." % (
                 f"{first['machines']:,}", f"{first['table_machines']:,}", f"{last['machines']:,}",
                 res["flatness"] * 100, f"{first['machines']:,}", f"{m:,}",
                 f"{first['table_machines']:,}", res["same_machines_change"] * 100))
    L += ["", "A training job's reading queries at %s machines (`EXPLAIN (ANALYZE, BUFFERS)`, the "
          "last machine, a 365-day window):" % f"{m:,}", "",
          "| query | plan | scans | rows | buffers | execution ms |", "|---|---|---|---|---|---|"]
    for p in res["plans"]:
        L.append("| %s | %s | %s | %s | %s | %.2f |" % (
            p["query"], p["top"], "; ".join(p["scans"]) or "–", f"{p['rows']:,}",
            f"{p['buffers']:,}", p["ms"] or 0))
    write_out("scale", "\n".join(L), res)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("section", choices=["dispatch", "api", "models-fit", "profile", "scale"])
    ap.add_argument("--machines", type=int, default=1000, help="scale: machines at the last step")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    {"dispatch": section_dispatch, "api": section_api, "models-fit": section_models_fit,
     "profile": section_profile, "scale": section_scale}[a.section](a)


if __name__ == "__main__":
    main()
