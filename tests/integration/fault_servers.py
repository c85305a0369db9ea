"""Private PostgreSQL and Redis servers for the fault tests (issue 8).

The suite's shared servers (tests/run.sh) must never be stopped, so a test
that restarts, flushes or takes down a store gets one of its own here. They
are started the way scripts/servers.sh starts them (trust auth, loopback
only, fsync off for PostgreSQL), on a port that stays the same across a
restart so the processes under test reconnect to the same address.

Also: what every fault test checks at the end (each job completed exactly
once, in job_events; every process still running and exiting 0 on SIGTERM
with clean logs), and a trigger loop that records every answer."""
import os
import shutil
import subprocess
import tempfile
import threading
import time

import psycopg2
import redis as redis_lib
import requests

from conftest import check_logs, free_port, pg_query, run_ctl



def _pg_bin():
    """The newest /usr/lib/postgresql/<major>/bin, as scripts/servers.sh picks it."""
    root = "/usr/lib/postgresql"
    majors = sorted((v for v in os.listdir(root) if v.isdigit()), key=int) \
        if os.path.isdir(root) else []
    return os.path.join(root, majors[-1], "bin") if majors else ""


PG_BIN = _pg_bin()


def wait_for(predicate, what, timeout=60.0, step=0.05):
    """Polls predicate until it returns something true; a hang guard, not a
    timing assertion."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"{what}: not within {timeout}s")


def scratch_dir(name):
    """A folder the postgres user can traverse: under the harness's
    ENMS_TEST_TMP (mode 755, removed with everything in it) when set."""
    base = os.environ.get("ENMS_TEST_TMP") or tempfile.gettempdir()
    path = tempfile.mkdtemp(prefix=f"{name}-", dir=base)
    os.chmod(path, 0o755)
    return path


def _as_pg(args):
    """initdb and postgres refuse to run as root: run them as postgres then."""
    return (["runuser", "-u", "postgres", "--", *args] if os.getuid() == 0 else list(args))


class PrivateRedis:
    """A redis-server of one test, append-only file on, in a folder of its own."""

    def __init__(self, appendonly=True):
        self.dir = scratch_dir("redis")
        self.port = free_port()
        self.appendonly = appendonly
        self.proc = None
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis_lib.Redis(host="127.0.0.1", port=self.port, decode_responses=True,
                                      socket_timeout=5)

    def start(self):
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
             "--dir", self.dir],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._pings, f"private redis on :{self.port} answers", timeout=15)

    def _pings(self):
        try:
            return self.client.ping()
        except redis_lib.RedisError:
            return False

    def stop(self):
        """SIGTERM: Redis writes its append-only file and exits."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        self.proc = None
        self.client.connection_pool.disconnect()

    def restart(self):
        self.stop()
        self.start()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivatePostgres:
    """A PostgreSQL cluster of one test, migrated by enmsctl."""

    def __init__(self, bin_dir):
        self.dir = scratch_dir("pg")
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/enms"
        self.admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        proc = subprocess.run(_as_pg([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U",
                                      "postgres", "-A", "trust", "-E", "UTF8",
                                      "--locale=C.UTF-8", "--no-sync"]),
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        self.start()
        conn = psycopg2.connect(self.admin)
        conn.autocommit = True
        conn.cursor().execute('CREATE DATABASE "enms"')
        conn.close()
        run_ctl(bin_dir, self.dsn, "migrate", check=True)

    def _ctl(self, *args):
        proc = subprocess.run(_as_pg([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, *args]),
                              capture_output=True, text=True, timeout=90)
        return proc

    def start(self):
        proc = self._ctl("-l", os.path.join(self.dir, "pg.log"), "-w", "-t", "60", "start",
                         "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                         "-c fsync=off -c max_connections=100")
        assert proc.returncode == 0, proc.stdout + proc.stderr + self.server_log()

    def stop(self, mode="fast"):
        """fast: open transactions are rolled back and every session ends."""
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            proc = self._ctl("-m", mode, "-w", "-t", "60", "stop")
            assert proc.returncode == 0, proc.stdout + proc.stderr

    def restart(self):
        self.stop()
        self.start()

    def server_log(self):
        try:
            with open(os.path.join(self.dir, "pg.log")) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def close(self):
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class TriggerLoop:
    """Triggers probe jobs from a thread, one every `every` seconds, and
    keeps every answer: (status code, JSON body or text)."""

    def __init__(self, base, machine, params, every=0.1):
        self.base, self.machine, self.params, self.every = base, machine, params, every
        self.answers = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        body = {"model_type": "probe", "machine_id": self.machine, "reason": "fault test",
                "params": self.params}
        url = f"{self.base}/api/v1/model-performance/retrain/trigger"
        while not self._stop.is_set():
            try:
                r = requests.post(url, json=body, timeout=15)
                try:
                    payload = r.json()
                except ValueError:
                    payload = r.text
                self.answers.append((r.status_code, payload))
            except requests.RequestException as e:
                self.answers.append((None, repr(e)))
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)

    def accepted(self):
        return [body["training_job_id"] for code, body in self.answers if code == 202]


def assert_503_json(resp, store):
    """A 503 whose JSON body names the store that is down in `detail`."""
    assert resp.status_code == 503, (resp.status_code, resp.text[:500])
    assert resp.headers.get("Content-Type", "").startswith("application/json"), resp.headers
    detail = resp.json().get("detail", "")
    assert detail.startswith(f"{store} unavailable"), detail
    assert len(detail) > len(f"{store} unavailable: "), detail  # says why, not only what
    return detail


def all_jobs(dsn):
    return {job: status for job, status in pg_query(
        dsn, "SELECT id::text, training_status FROM model_training_history")}


def completions(dsn):
    """job id -> number of job_events rows going to completed."""
    return dict(pg_query(dsn, "SELECT job_id::text, count(*) FROM job_events "
                              "WHERE to_status = 'completed' GROUP BY job_id"))


def wait_all_completed(dsn, jobs, timeout=120.0):
    def done():
        status = all_jobs(dsn)
        return all(status.get(j) == "completed" for j in jobs) and status
    try:
        return wait_for(done, "every job completed", timeout=timeout, step=0.25)
    except AssertionError:
        status = all_jobs(dsn)
        left = {j: status.get(j) for j in jobs if status.get(j) != "completed"}
        raise AssertionError(f"{len(left)} of {len(jobs)} jobs not completed: "
                             f"{dict(list(left.items())[:10])}")


def assert_exactly_once(dsn, jobs):
    """Every job in PostgreSQL (the triggered ones and any other) is
    completed, with exactly one job_events row going to completed; nothing
    failed, was cancelled or dead-lettered on the way."""
    status = all_jobs(dsn)
    assert set(jobs) <= set(status), set(jobs) - set(status)
    not_done = {j: s for j, s in status.items() if s != "completed"}
    assert not not_done, not_done
    counts = completions(dsn)
    wrong = {j: counts.get(j, 0) for j in status if counts.get(j, 0) != 1}
    assert not wrong, f"jobs not completed exactly once: {wrong}"
    others = pg_query(dsn, "SELECT count(*) FROM job_events WHERE to_status IN "
                           "('failed', 'cancelled')")[0][0]
    assert others == 0
    return status


def assert_processes_survived(procs):
    """Every process still runs, then exits 0 on SIGTERM (the sanitizer
    build exits 86 on a leak or error), and every log line is clean."""
    crashed = [(p.log_path, p.proc.returncode) for p in procs if p.proc.poll() is not None]
    assert not crashed, f"processes ended during the test: {crashed}"
    codes = {p.log_path: p.stop(timeout=30) for p in procs}
    assert all(c == 0 for c in codes.values()), codes
    check_logs(procs)


def queues_empty(r, prefix):
    """No job id left in a queue or processing list of the prefix."""
    keys = list(r.scan_iter(f"{prefix}:queue:*")) + list(r.scan_iter(f"{prefix}:processing:*"))
    return all(r.llen(k) == 0 for k in keys)
