#!/usr/bin/env python3
"""chaos.py - the chaos run of issue 8: many jobs, several workers, kill -9.

Starts one enms-api and N enms-worker processes against a migrated database
and a Redis server, submits probe jobs of random length (50-500 ms) and a few
real trainings (baseline / anomaly on seeded demo machines) through the API,
and meanwhile kills a random worker with SIGKILL every few seconds and starts
it again under the same worker id. When every job has ended it checks:

  lost     every job ends `completed` (a real training may also end `failed`
           with a real error, never a lost-worker or timeout message); none is
           left pending/running or dead-lettered.
  double   no job is completed twice, counted three independent ways:
           PostgreSQL (`job_events` rows to `completed`), the workers' own
           per-attempt log lines ("attempt N completed", one file per worker
           process) and the `training.completed` messages on `<p>:events`
           (a subscriber started before the first job). The attempt in the
           log and in the message must be the one PostgreSQL recorded.
  recovery for each job a killed worker held (PostgreSQL `running` under its
           id, or claimed in its Redis processing list): kill time -> the
           `job_events` row of the job's next attempt going `running`.

Used by tests/integration/test_chaos.py (short run, in the suite) and by
`make chaos` / `make chaos-short` through tests/chaos/run_chaos.sh, which
starts a throwaway PostgreSQL and Redis. Exit status 0 when nothing was lost
or completed twice and every held job recovered.
"""
import argparse
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import psycopg2
import redis as redis_lib
import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROBE_MACHINE = "c0000000-0000-0000-0000-000000000001"
REAL_TYPES = ("baseline", "anomaly")
# Seeded demo data: enough days for a baseline (30 days minimum) and an
# anomaly model (14), few enough that a real training takes well under a
# second even in the sanitizer build.
SEED_END, SEED_DAYS, TRAIN_DAYS = "2026-01-01", 45, 40
# Failures of a real training that only kills can cause: any of these is a
# lost job, not a legitimate training error.
KILL_FAILURES = ("worker lost", "timed out", "went silent", "gave up after")
COMPLETED_LINE = re.compile(r"^attempt (\d+) completed$")


class Config:
    """Everything a run needs; defaults are the short (CI) variant."""

    def __init__(self, dsn, redis_url, bin_dir, workdir, jobs=200, kills=20, workers=4,
                 kill_interval=(0.8, 1.2), real_fraction=0.03, seed=None, timeout=240.0,
                 max_attempts=20, heartbeat_ttl_s=3, housekeeping_interval_s=1):
        self.dsn, self.redis_url, self.bin_dir, self.workdir = dsn, redis_url, bin_dir, workdir
        self.jobs, self.kills, self.workers = jobs, kills, workers
        self.kill_interval, self.real_fraction = kill_interval, real_fraction
        self.seed = seed if seed is not None else random.randrange(2**31)
        self.timeout, self.max_attempts = timeout, max_attempts
        self.heartbeat_ttl_s = heartbeat_ttl_s
        self.housekeeping_interval_s = housekeeping_interval_s


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _query(dsn, sql, params=None):
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


class _Proc:
    """One of our binaries in the background, its output in log_path."""

    def __init__(self, args, env, log_path):
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=15):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class _Subscriber(threading.Thread):
    """Records every training.completed message on <p>:events."""

    def __init__(self, r, channel):
        super().__init__(daemon=True)
        self.pubsub = r.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel)
        self.completed = []  # (job_id, attempt, worker_id)
        self.messages = 0
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            msg = self.pubsub.get_message(timeout=0.2)
            if not msg or msg.get("type") != "message":
                continue
            self.messages += 1
            body = json.loads(msg["data"])
            if body.get("event") == "training.completed":
                self.completed.append((body["job_id"], body.get("attempt"), body.get("worker_id")))

    def stop(self):
        self.stopping.set()
        self.join(timeout=5)
        self.pubsub.close()


def _base_env(cfg, prefix):
    env = dict(os.environ)
    env.update({
        "ENMS_PG_DSN": cfg.dsn, "ENMS_REDIS_URL": cfg.redis_url, "ENMS_REDIS_PREFIX": prefix,
        "ENMS_ENABLE_PROBE": "1", "ENMS_MAX_ATTEMPTS": str(cfg.max_attempts),
        "ENMS_HEARTBEAT_INTERVAL_S": "1", "ENMS_HEARTBEAT_TTL_S": str(cfg.heartbeat_ttl_s),
        "ENMS_HOUSEKEEPING_INTERVAL_S": str(cfg.housekeeping_interval_s),
        "ENMS_REDISPATCH_GRACE_S": "2", "ENMS_SHUTDOWN_GRACE_S": "5",
        "ENMS_CONNECT_TIMEOUT_MS": "1000",
        # info: the workers' "attempt N completed" lines are the per-attempt log.
        "ENMS_LOG_LEVEL": "info",
        "ENMS_EVAL_INTERVAL_S": "0", "ENMS_SCORE_INTERVAL_S": "0",
        "ENMS_RETRAIN_BASELINE_S": "0", "ENMS_RETRAIN_ANOMALY_S": "0",
        "ENMS_RETRAIN_FORECAST_S": "0"})
    env.pop("ENMS_API_TOKEN", None)
    return env


def _plan(cfg, rng, machines):
    """The jobs to submit, in order: probes of 50-500 ms and, spread among
    them, real trainings (at least 2 when real_fraction > 0)."""
    n_real = 0
    if cfg.real_fraction > 0:
        n_real = min(cfg.jobs, max(2, round(cfg.jobs * cfg.real_fraction)))
    plan = []
    for _ in range(cfg.jobs - n_real):
        total_ms = rng.randint(50, 500)
        steps = rng.randint(1, 5)
        plan.append({"model_type": "probe", "machine_id": PROBE_MACHINE,
                     "params": {"steps": steps, "step_ms": total_ms // steps}})
    for k in range(n_real):
        at = rng.randint(0, len(plan))
        plan.insert(at, {"model_type": REAL_TYPES[k % 2], "machine_id": rng.choice(machines),
                         "params": {"days": TRAIN_DAYS}})
    return plan


class _Run:
    def __init__(self, cfg):
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.prefix = "{chaos" + uuid.uuid4().hex[:8] + "}"
        self.env = _base_env(cfg, self.prefix)
        self.r = redis_lib.Redis.from_url(cfg.redis_url, decode_responses=True)
        self.api = None
        self.workers = {}  # worker id -> _Proc (the current process)
        self.procs = []  # every process started, for logs and clean-up
        self.kills = []
        self.holds = set()  # (job, attempt) already recorded as held by a killed worker
        self.jobs = {}  # job id -> plan entry
        self.refused = 0  # 409s for real trainings (slot busy), retried

    def start_api(self):
        port = _free_port()
        self.api = self._spawn("enms-api", dict(self.env, ENMS_HTTP_PORT=str(port)), "api")
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"enms-api did not answer on {self.base}")

    def _spawn(self, name, env, tag):
        log = os.path.join(self.cfg.workdir, f"{tag}-{len(self.procs)}.log")
        p = _Proc([os.path.join(self.cfg.bin_dir, name)], env, log)
        self.procs.append(p)
        return p

    def start_worker(self, wid):
        self.workers[wid] = self._spawn("enms-worker", dict(self.env, ENMS_WORKER_ID=wid), wid)

    def submit(self, entry):
        """Posts one job; returns its id, or None when refused with 409."""
        body = dict(entry, reason="chaos run")
        resp = requests.post(f"{self.base}/api/v1/model-performance/retrain/trigger", json=body,
                             timeout=15)
        if resp.status_code == 409 and entry["model_type"] != "probe":
            self.refused += 1
            return None
        if resp.status_code != 202:
            raise RuntimeError(f"trigger refused ({resp.status_code}): {resp.text[:300]}")
        job = resp.json()["training_job_id"]
        self.jobs[job] = entry
        return job

    def kill_one(self):
        """SIGKILLs a random live worker and records what it held."""
        alive = [w for w, p in self.workers.items() if p.alive()]
        if not alive:
            return None
        wid = self.rng.choice(alive)
        proc = self.workers[wid]
        killed_at = time.time()
        os.kill(proc.proc.pid, signal.SIGKILL)
        proc.proc.wait(timeout=10)
        # The dead process writes nothing more and housekeeping leaves a
        # running job alone for a heartbeat TTL: this is what it held.
        held = {job: att for job, att in _query(
            self.cfg.dsn, "SELECT id::text, attempts FROM model_training_history "
            "WHERE worker_id = %s AND training_status = 'running'", (wid,))}
        claimed = self.r.lrange(f"{self.prefix}:processing:{wid}", 0, -1)
        for job in claimed:
            if job not in held:
                row = _query(self.cfg.dsn, "SELECT training_status, attempts FROM "
                             "model_training_history WHERE id = %s", (job,))
                if row and row[0][0] == "pending":
                    held[job] = row[0][1]  # claimed, not started: next attempt is +1
        # A job still running under this id from an earlier incarnation (its
        # lease not yet expired) was lost by that kill, not by this one.
        held = {j: a for j, a in held.items() if (j, a) not in self.holds}
        self.holds.update(held.items())
        kill = {"n": len(self.kills) + 1, "worker": wid, "at": killed_at,
                "held": [{"job": j, "attempt": a} for j, a in sorted(held.items())]}
        self.kills.append(kill)
        return kill

    def unfinished(self):
        if not self.jobs:
            return 0
        return _query(self.cfg.dsn, "SELECT count(*) FROM model_training_history "
                      "WHERE id = ANY(%s::uuid[]) AND training_status IN ('pending', 'running')",
                      (list(self.jobs),))[0][0]

    def stop_all(self):
        for p in self.procs:
            p.stop()


def _drive(run, plan):
    """The main loop: paced submissions, kills and restarts, until every job
    has ended (or the timeout)."""
    cfg, rng = run.cfg, run.rng
    lo, hi = cfg.kill_interval
    # Submissions are spread over the kill window so that kills land while
    # jobs are running, at every stage of the run.
    window = cfg.kills * (lo + hi) / 2 * 0.9 if cfg.kills else 0.0
    t0 = time.monotonic()
    deadline = t0 + cfg.timeout
    queue = list(plan)
    submitted = 0
    next_kill = t0 + rng.uniform(lo, hi) if cfg.kills else None
    restarts = []  # (monotonic time, worker id)
    last_check, open_jobs = 0.0, None
    while time.monotonic() < deadline:
        now = time.monotonic()
        due = len(plan) if window == 0 else min(len(plan), int(len(plan) * (now - t0) / window) + 1)
        deferred = []
        while queue and submitted < due:
            entry = queue.pop(0)
            if run.submit(entry) is None:
                deferred.append(entry)  # that machine's model is still training
                if len(deferred) > 4:
                    break
                continue
            submitted += 1
        queue = deferred + queue
        if next_kill is not None and now >= next_kill:
            if run.kill_one():
                restarts.append((time.monotonic() + rng.uniform(0.2, 0.8), run.kills[-1]["worker"]))
            next_kill = now + rng.uniform(lo, hi) if len(run.kills) < cfg.kills else None
        for when, wid in list(restarts):
            if time.monotonic() >= when:
                run.start_worker(wid)
                restarts.remove((when, wid))
        if not queue and next_kill is None and not restarts and now - last_check >= 0.5:
            last_check = now
            open_jobs = run.unfinished()
            if open_jobs == 0:
                return time.monotonic() - t0, False
        time.sleep(0.02)
    return time.monotonic() - t0, True


def _completion_log(run):
    """(job, attempt, worker id) for every "attempt N completed" line in the
    worker logs; plus lines that are not whole JSON objects."""
    lines, bad = [], []
    for p in run.procs:
        if p is run.api:
            continue
        with open(p.log_path, "rb") as f:
            for n, raw in enumerate(f.read().decode(errors="replace").splitlines(), 1):
                if not raw.strip():
                    continue
                try:
                    rec = json.loads(raw)
                except ValueError:
                    bad.append(f"{p.log_path}:{n}")
                    continue
                m = COMPLETED_LINE.match(rec.get("msg", ""))
                if m and rec.get("job_id"):
                    lines.append((rec["job_id"], int(m.group(1)), os.path.basename(p.log_path)))
    return lines, bad


def _percentile(values, q):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def _analyse(run, duration, timed_out, sub):
    cfg = run.cfg
    ids = list(run.jobs)
    rows = {j: (st, att, err) for j, st, att, err in _query(
        cfg.dsn, "SELECT id::text, training_status, attempts, error_message FROM "
        "model_training_history WHERE id = ANY(%s::uuid[])", (ids,))}
    events, completed_by = {}, {}
    for j, att, wid, at in _query(cfg.dsn, "SELECT job_id::text, attempt, worker_id, "
                                  "extract(epoch FROM at)::float8 FROM job_events "
                                  "WHERE job_id = ANY(%s::uuid[]) AND to_status = 'completed' "
                                  "ORDER BY id", (ids,)):
        events.setdefault(j, []).append(att)
        completed_by[j] = (wid, at)
    dead = set(run.r.lrange(f"{run.prefix}:dead", 0, -1))
    log_lines, bad_lines = _completion_log(run)
    by_log, by_msg = {}, {}
    for j, att, _ in log_lines:
        by_log.setdefault(j, []).append(att)
    for j, att, _ in sub.completed:
        by_msg.setdefault(j, []).append(att)

    lost, failed_real, double, mismatch = [], [], [], []
    status_counts = {}
    for j, entry in run.jobs.items():
        st, att, err = rows.get(j, ("missing", None, None))
        status_counts[st] = status_counts.get(st, 0) + 1
        legit_fail = (st == "failed" and entry["model_type"] != "probe" and
                      not any(k in (err or "") for k in KILL_FAILURES))
        if st == "failed" and legit_fail:
            failed_real.append({"job": j, "error": err})
        elif st != "completed" or j in dead:
            lost.append({"job": j, "model_type": entry["model_type"], "status": st,
                         "attempts": att, "error": err})
        for source, counts in (("postgresql", events), ("worker log", by_log),
                               ("events channel", by_msg)):
            got = counts.get(j, [])
            if len(got) > 1:
                double.append({"job": j, "source": source, "attempts": got})
            elif got and st == "completed" and got[0] != att:
                mismatch.append({"job": j, "source": source, "attempt": got[0], "pg_attempt": att})
        if st == "completed" and len(events.get(j, [])) != 1:
            mismatch.append({"job": j, "source": "postgresql", "completed_events": events.get(j)})

    completed = [j for j in run.jobs if rows.get(j, ("",))[0] == "completed"]
    recoveries, unrecovered = [], []
    for kill in run.kills:
        for h in kill["held"]:
            nxt = _query(cfg.dsn, "SELECT extract(epoch FROM at)::float8, attempt, worker_id FROM "
                         "job_events WHERE job_id = %s AND to_status = 'running' AND attempt > %s "
                         "ORDER BY id LIMIT 1", (h["job"], h["attempt"]))
            if not nxt:
                unrecovered.append(dict(h, kill=kill["n"]))
                continue
            h["recovered_s"] = round(nxt[0][0] - kill["at"], 3)
            h["by"], h["new_attempt"] = nxt[0][2], nxt[0][1]
            recoveries.append(h["recovered_s"])
    # A completion the worker's log or the channel lacks is expected only
    # when that worker was killed between its COMMIT and the log line or
    # PUBLISH; any other gap would mean the records disagree. The event's
    # time is its transaction's now(): a completion that is one statement
    # (no BEGIN) is stamped when the server starts it, which on a loaded
    # host can be a moment after the worker that sent it was killed.
    unexplained = []
    for j in completed:
        if j in by_log and j in by_msg:
            continue
        wid, at = completed_by.get(j, (None, 0.0))
        if not any(k["worker"] == wid and at - 1.0 <= k["at"] <= at + 5.0 for k in run.kills):
            unexplained.append({"job": j, "worker": wid, "in_log": j in by_log,
                                "in_events": j in by_msg})
    attempts = [rows[j][1] for j in completed if j in rows]
    leftovers = {k: v for k, v in ((k, run.r.llen(k)) for k in run.r.scan_iter(
        f"{run.prefix}:processing:*")) if v}
    queued = {k: v for k, v in ((k, run.r.llen(k)) for k in run.r.scan_iter(
        f"{run.prefix}:queue:*")) if v}
    return {
        "command": None,
        "seed": cfg.seed, "workers": cfg.workers, "jobs": len(run.jobs),
        "probe_jobs": sum(1 for e in run.jobs.values() if e["model_type"] == "probe"),
        "real_trainings": sum(1 for e in run.jobs.values() if e["model_type"] != "probe"),
        "kills": len(run.kills), "kill_interval_s": list(cfg.kill_interval),
        "kills_holding_a_job": sum(1 for k in run.kills if k["held"]),
        "max_attempts": cfg.max_attempts, "heartbeat_ttl_s": cfg.heartbeat_ttl_s,
        "housekeeping_interval_s": cfg.housekeeping_interval_s,
        "duration_s": round(duration, 1), "timed_out": timed_out,
        "status_counts": status_counts,
        "lost": lost, "double_completions": double, "attempt_mismatches": mismatch,
        "failed_real_trainings": failed_real,
        "completions": {"postgresql": sum(len(v) for v in events.values()),
                        "worker_log": len(log_lines), "events_channel": len(sub.completed)},
        "completed_without_log_line": sum(1 for j in completed if j not in by_log),
        "completed_without_event": sum(1 for j in completed if j not in by_msg),
        "missing_record_unexplained": unexplained,
        "bad_log_lines": bad_lines,
        "jobs_with_retries": sum(1 for a in attempts if a and a > 1),
        "max_attempts_used": max(attempts) if attempts else 0,
        "recovery_s": {"count": len(recoveries), "p50": _percentile(recoveries, 0.5),
                       "p90": _percentile(recoveries, 0.9),
                       "max": max(recoveries) if recoveries else None,
                       "min": min(recoveries) if recoveries else None},
        "unrecovered": unrecovered,
        "redis_leftovers": {"processing": leftovers, "queues": queued, "dead": len(dead)},
        "refused_409_retried": run.refused,
        "kill_log": run.kills,
        "logs": [p.log_path for p in run.procs],
    }


def ok(report):
    """True when the run shows no lost job, no double completion, and every
    job a killed worker held running again."""
    return (not report["lost"] and not report["double_completions"] and
            not report["attempt_mismatches"] and not report["unrecovered"] and
            not report["missing_record_unexplained"] and
            not report["bad_log_lines"] and not report["timed_out"])


def run(cfg):
    """Runs the chaos scenario described at the top; returns the report dict."""
    os.makedirs(cfg.workdir, exist_ok=True)
    seed_env = dict(os.environ, ENMS_PG_DSN=cfg.dsn)
    proc = subprocess.run([os.path.join(cfg.bin_dir, "enmsctl"), "seed", "--end", SEED_END,
                           "--days", str(SEED_DAYS)], env=seed_env, capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"enmsctl seed failed: {proc.stderr[-2000:]}")
    machines = [m for (m,) in _query(cfg.dsn, "SELECT id::text FROM machines ORDER BY id")]
    r = _Run(cfg)
    plan = _plan(cfg, r.rng, machines)
    sub = _Subscriber(r.r, f"{r.prefix}:events")
    sub.start()
    try:
        r.start_api()
        for i in range(cfg.workers):
            r.start_worker(f"chaos-w{i}")
        duration, timed_out = _drive(r, plan)
        # Let the last settles reach Redis before it is inspected.
        time.sleep(1.0)
        sub_done = time.monotonic() + 2
        while time.monotonic() < sub_done and len(sub.completed) < len(r.jobs):
            time.sleep(0.1)
    finally:
        r.stop_all()
        sub.stop()
    return _analyse(r, duration, timed_out, sub)


def markdown(report):
    rec = report["recovery_s"]
    fmt = (lambda v: "–" if v is None else f"{v:.2f} s")
    lines = [
        "| figure | value |", "|---|---|",
        f"| jobs | {report['jobs']} ({report['probe_jobs']} probes of 50–500 ms, "
        f"{report['real_trainings']} real baseline/anomaly trainings) |",
        f"| workers | {report['workers']} |",
        f"| kills (`kill -9`, worker restarted under the same id) | {report['kills']} "
        f"({report['kills_holding_a_job']} while holding a job), every "
        f"{report['kill_interval_s'][0]}–{report['kill_interval_s'][1]} s |",
        f"| jobs lost | {len(report['lost'])} |",
        f"| jobs completed twice (PostgreSQL / worker log / events) | "
        f"{len(report['double_completions'])} |",
        f"| completions counted (PostgreSQL / worker log / events) | "
        f"{report['completions']['postgresql']} / {report['completions']['worker_log']} / "
        f"{report['completions']['events_channel']} |",
        f"| completed jobs without a worker log line / without an event (worker killed between "
        f"COMMIT and log line / PUBLISH) | {report['completed_without_log_line']} / "
        f"{report['completed_without_event']} (unexplained by a kill: "
        f"{len(report['missing_record_unexplained'])}) |",
        f"| recovery, kill → job running again (n = {rec['count']}) | p50 {fmt(rec['p50'])}, "
        f"p90 {fmt(rec['p90'])}, max {fmt(rec['max'])} |",
        f"| jobs that needed more than one attempt | {report['jobs_with_retries']} "
        f"(most attempts: {report['max_attempts_used']}; "
        f"`ENMS_MAX_ATTEMPTS={report['max_attempts']}`) |",
        f"| real trainings failed with a real error | {len(report['failed_real_trainings'])} |",
        f"| duration | {report['duration_s']} s |",
        f"| seed | {report['seed']} |",
    ]
    if report.get("command"):
        lines.append(f"| command | `{report['command']}` |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dsn", default=os.environ.get("ENMS_PG_DSN"))
    ap.add_argument("--redis-url", default=os.environ.get("ENMS_REDIS_URL"))
    ap.add_argument("--bin", default=os.environ.get("ENMS_BIN", os.path.join(ROOT, "build", "bin")))
    ap.add_argument("--workdir", default=None, help="folder for the process logs")
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--kill-interval", default="0.8-1.2", help="seconds between kills, LO-HI")
    ap.add_argument("--real-fraction", type=float, default=0.03)
    ap.add_argument("--max-attempts", type=int, default=20)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--report", action="append", default=[],
                    help="write the report to FILE (.json: JSON, else markdown); repeatable")
    a = ap.parse_args(argv)
    if not a.dsn or not a.redis_url:
        ap.error("--dsn and --redis-url (or ENMS_PG_DSN and ENMS_REDIS_URL) are required")
    lo, _, hi = a.kill_interval.partition("-")
    cfg = Config(a.dsn, a.redis_url, a.bin, a.workdir or f"/tmp/enms-chaos-{os.getpid()}",
                 jobs=a.jobs, kills=a.kills, workers=a.workers,
                 kill_interval=(float(lo), float(hi or lo)), real_fraction=a.real_fraction,
                 seed=a.seed, timeout=a.timeout, max_attempts=a.max_attempts)
    report = run(cfg)
    report["command"] = os.environ.get("ENMS_CHAOS_COMMAND") or " ".join(sys.argv)
    for path in a.report:
        with open(path, "w") as f:
            if path.endswith(".json"):
                json.dump(report, f, indent=1)
            else:
                f.write(markdown(report))
    print(markdown(report))
    for key in ("lost", "double_completions", "attempt_mismatches", "unrecovered",
                "missing_record_unexplained",
                "failed_real_trainings", "bad_log_lines"):
        if report[key]:
            print(f"{key}: {json.dumps(report[key][:10])}")
    print("chaos: PASS" if ok(report) else "chaos: FAIL")
    return 0 if ok(report) else 1


if __name__ == "__main__":
    sys.exit(main())
