#!/usr/bin/env python3
"""load.py - the load test of issue 8: mixed API traffic from wrk
(bench/load_mix.lua: job list, machine list, metrics trend, queue status and
retrain triggers) for a while, with workers training the jobs the triggers
create on seeded demo data, and the figures of the run: requests, status
code counts, socket errors, latency percentiles, the resident memory (VmRSS)
of the API and every worker at the start, peak and end, and the jobs that
finished meanwhile.

Two callers: bench/load_test.sh (make load, 60 s with the normal build, a
private PostgreSQL and Redis) runs main(); tests/integration/test_load.py
imports run() and drives processes the suite started. Nothing here asserts:
the test asserts, the benchmark reports.

  load.py --bin DIR --pg-dsn DSN --redis-url URL [--seconds 60] [--workers 2]
          [--connections 16] [--threads 4] [--days 120] [--json F] [--md F]
"""
import argparse
import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LUA = os.path.join(HERE, "load_mix.lua")


def rss_kb(pid):
    """VmRSS of pid in kB (None when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RssWatch:
    """Samples the VmRSS of named processes every interval seconds from
    start to stop: first, peak and last sample of each."""

    def __init__(self, pids, interval=0.5):
        self.pids, self.interval = dict(pids), interval
        self.samples = {name: [] for name in self.pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        for name, pid in self.pids.items():
            kb = rss_kb(pid)
            if kb is not None:
                self.samples[name].append(kb)

    def _run(self):
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self):
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()

    def result(self):
        """Per process: the first, peak and last sample, and the samples at
        a quarter, half and three quarters of the run (growth that goes on
        all run long is a leak; a step at the start is warm-up)."""
        out = {}
        for name, s in self.samples.items():
            if not s:
                out[name] = None
                continue
            q = [s[min(len(s) - 1, len(s) * k // 4)] for k in (1, 2, 3)]
            out[name] = {"start_kb": s[0], "q1_kb": q[0], "mid_kb": q[1], "q3_kb": q[2],
                         "end_kb": s[-1], "peak_kb": max(s), "samples": len(s)}
        return out


def run_wrk(base, seconds, connections, threads, machines, timeout_s=10):
    """Runs wrk with load_mix.lua; returns its LOAD-RESULT record plus the
    command. Raises RuntimeError when wrk is missing or prints no result."""
    wrk = shutil.which("wrk")
    if not wrk:
        raise RuntimeError("wrk is not installed: `make deps` (scripts/deps.sh) installs the "
                           "Debian package wrk")
    cmd = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout_s}s",
           "-s", LUA, base, "--", *machines]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    m = re.search(r"^LOAD-RESULT (\{.*\})$", proc.stdout, re.M)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    res = json.loads(m.group(1))
    res["command"] = (f"wrk -t{threads} -c{connections} -d{seconds}s --timeout={timeout_s}s "
                      f"-s bench/load_mix.lua <api> -- <{len(machines)} machine ids>")
    return res


def job_counts(dsn, since):
    """Jobs created at or after since, by status and model type, the
    median training time of those completed and their commonest errors."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT training_status, model_type, count(*) FROM model_training_history "
                    "WHERE created_at >= %s GROUP BY 1, 2 ORDER BY 1, 2", (since,))
        rows = cur.fetchall()
        cur.execute("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY training_duration_seconds) "
                    "FROM model_training_history WHERE created_at >= %s "
                    "AND training_status = 'completed'", (since,))
        median = cur.fetchone()[0]
        cur.execute("SELECT left(error_message, 200), count(*) FROM model_training_history "
                    "WHERE created_at >= %s AND error_message IS NOT NULL "
                    "GROUP BY 1 ORDER BY 2 DESC LIMIT 5", (since,))
        errors = dict(cur.fetchall())
    conn.close()
    by_status = {}
    by_type = {}
    for status, mtype, n in rows:
        by_status[status] = by_status.get(status, 0) + n
        if status == "completed":
            by_type[mtype] = by_type.get(mtype, 0) + n
    return {"by_status": by_status, "completed_by_type": by_type,
            "median_training_s": median, "errors": errors}


def wait_settled(dsn, since, timeout=120):
    """Waits until no job created at or after since is pending or running;
    returns job_counts(dsn, since). Raises RuntimeError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        counts = job_counts(dsn, since)
        active = {k: v for k, v in counts["by_status"].items() if k in ("pending", "running")}
        if not active:
            return counts
        if time.monotonic() > deadline:
            raise RuntimeError(f"jobs still active after {timeout} s: {counts}")
        time.sleep(0.2)


def trigger(base, model_type, machine_id):
    body = json.dumps({"model_type": model_type, "machine_id": machine_id,
                       "reason": "load test warm-up"}).encode()
    req = urllib.request.Request(f"{base}/api/v1/model-performance/retrain/trigger", data=body,
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def db_now(dsn):
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT now()")
        now = cur.fetchone()[0]
    conn.close()
    return now


def warm_up(base, dsn, machines):
    """One baseline and one anomaly model per machine, trained before the
    traffic starts, so that trends and job lists read real rows."""
    since = db_now(dsn)
    for m in machines:
        for model_type in ("baseline", "anomaly"):
            trigger(base, model_type, m)
    return wait_settled(dsn, since)


def machine_ids(dsn):
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT id::text FROM machines ORDER BY id")
        ids = [r[0] for r in cur.fetchall()]
    conn.close()
    return ids


def run(base, dsn, pids, seconds, connections=16, threads=4, machines=None):
    """The measured part: wrk against base for seconds while the processes
    in pids ({name: pid}, e.g. "api", "worker-1") run; returns every figure
    as one dict. The jobs counted are those created during the run."""
    machines = machines or machine_ids(dsn)
    since = db_now(dsn)
    started = time.monotonic()
    with RssWatch(pids) as watch:
        wrk = run_wrk(base, seconds, connections, threads, machines)
    # Jobs still queued at the end keep training after wrk stops; the count
    # is of those finished while the traffic ran.
    jobs = job_counts(dsn, since)
    statuses = {int(k): v for k, v in wrk["statuses"].items()}
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": seconds, "connections": connections, "threads": threads,
        "machines": len(machines), "wall_s": round(time.monotonic() - started, 1),
        "requests": wrk["requests"], "requests_per_s": wrk["requests"] / (wrk["duration_us"] / 1e6),
        "statuses": statuses,
        "status_5xx": sum(v for k, v in statuses.items() if k >= 500),
        "socket_errors": {k: wrk["errors"][k] for k in ("connect", "read", "write", "timeout")},
        "sent": wrk["sent"], "latency_ms": {k: v / 1000.0 for k, v in wrk["latency_us"].items()},
        "rss": watch.result(), "jobs": jobs, "wrk_command": wrk["command"], "since": since,
    }


def markdown(r, command):
    """The figures as the Markdown of docs/reliability.md's Load section."""
    lat = r["latency_ms"]
    codes = ", ".join(f"{k}: {v:,}" for k, v in sorted(r["statuses"].items()))
    sock = r["socket_errors"]
    lines = [
        f"Run {r['date']} with `{command}`: {r['seconds']} s of wrk "
        f"({r['connections']} connections, {r['threads']} threads) over {r['machines']} machines.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| requests | {r['requests']:,} ({r['requests_per_s']:,.0f}/s) |",
        "| by kind | " + ", ".join(f"{k} {v:,}" for k, v in sorted(r["sent"].items())) + " |",
        f"| status codes | {codes} |",
        f"| 5xx | {r['status_5xx']} |",
        f"| socket errors (connect/read/write/timeout) | {sock['connect']}/{sock['read']}/"
        f"{sock['write']}/{sock['timeout']} |",
        f"| latency p50 / p90 / p99 / max | {lat['p50']:.2f} / {lat['p90']:.2f} / {lat['p99']:.2f} / "
        f"{lat['max']:.1f} ms |",
        "| jobs completed during the run | " + (", ".join(
            f"{k} {v}" for k, v in sorted(r["jobs"]["completed_by_type"].items())) or "none")
        + f" (median training {r['jobs']['median_training_s'] or 0:.2f} s); all jobs created: "
        + ", ".join(f"{k} {v}" for k, v in sorted(r["jobs"]["by_status"].items())) + " |",
    ]
    if "jobs_settled" in r:
        lines.append("| the run's jobs once the queue drained | " + ", ".join(
            f"{k} {v}" for k, v in sorted(r["jobs_settled"].items())) + " |")
    for name, m in r["rss"].items():
        if m:
            steps = " / ".join(f"{m[k] / 1024:.1f}" for k in ("start_kb", "q1_kb", "mid_kb", "q3_kb",
                                                              "end_kb"))
            lines.append(f"| RSS {name}: start / 1/4 / 1/2 / 3/4 / end (peak) | {steps} "
                         f"({m['peak_kb'] / 1024:.1f}) MiB |")
    return "\n".join(lines) + "\n"


# --- standalone run (make load) ----------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"enms-api exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{base}/healthz did not answer within {timeout} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--pg-dsn", required=True)
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--days", type=int, default=120, help="days of demo readings to seed")
    ap.add_argument("--logs", default=None, help="folder for the processes' logs")
    ap.add_argument("--json")
    ap.add_argument("--md")
    ap.add_argument("--command", default=os.environ.get("ENMS_LOAD_COMMAND", "bench/load_test.sh"))
    a = ap.parse_args()

    env = dict(os.environ, ENMS_PG_DSN=a.pg_dsn, ENMS_REDIS_URL=a.redis_url,
               ENMS_SCHEMA_DIR=os.path.join(ROOT, "schema"), ENMS_WEB_ROOT=os.path.join(ROOT, "web"),
               ENMS_LOG_LEVEL=os.environ.get("ENMS_LOG_LEVEL", "warn"),
               # No scheduled work: the jobs are the ones the traffic triggers.
               ENMS_EVAL_INTERVAL_S="0", ENMS_SCORE_INTERVAL_S="0", ENMS_RETRAIN_BASELINE_S="0",
               ENMS_RETRAIN_ANOMALY_S="0", ENMS_RETRAIN_FORECAST_S="0")
    ctl = os.path.join(a.bin, "enmsctl")
    subprocess.run([ctl, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([ctl, "seed", "--days", str(a.days)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    logs = a.logs or os.path.join(ROOT, "build", "load-logs")
    os.makedirs(logs, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    procs = {}
    files = []
    try:
        def start(name, binary, extra):
            f = open(os.path.join(logs, f"{name}.log"), "wb")
            files.append(f)
            procs[name] = subprocess.Popen([os.path.join(a.bin, binary)], env=dict(env, **extra),
                                           stdout=f, stderr=subprocess.STDOUT)

        start("api", "enms-api", {"ENMS_HTTP_PORT": str(port)})
        for i in range(1, a.workers + 1):
            start(f"worker-{i}", "enms-worker", {"ENMS_WORKER_ID": f"load-{i}"})
        wait_healthy(base, procs["api"])
        warm = warm_up(base, a.pg_dsn, machine_ids(a.pg_dsn))
        result = run(base, a.pg_dsn, {n: p.pid for n, p in procs.items()}, a.seconds,
                     a.connections, a.threads)
        dead = {n: p.returncode for n, p in procs.items() if p.poll() is not None}
        result["exited_during_run"] = dead
        result["warm_up_jobs"] = warm["by_status"]
        # The jobs the traffic created, once the workers have worked off the
        # queue: every one must have completed.
        result["jobs_settled"] = wait_settled(a.pg_dsn, result["since"])["by_status"]
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in files:
            f.close()
    md = markdown(result, a.command)
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2, default=str)
    if a.md:
        with open(a.md, "w", encoding="utf-8") as f:
            f.write(md)
    sys.stdout.write(md)
    failed_jobs = {k: v for k, v in result["jobs_settled"].items() if k != "completed"}
    bad = result["status_5xx"] or any(result["socket_errors"].values()) or dead or failed_jobs
    if bad:
        print(f"load: 5xx {result['status_5xx']}, socket errors {result['socket_errors']}, "
              f"exited {dead}, jobs not completed {failed_jobs} (logs in {logs})", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
