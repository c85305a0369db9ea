"""Horizontal scaling shown: workers on two hosts share one queue, and when one
host dies the other finishes everything (issue 7, acceptance 4).

Two modes, and the test says which one ran (a line on the terminal and the
junit testsuite property `two_hosts_mode`):

- netns: each host is a network namespace with its own address on a veth pair
  (tests/integration/netns.py). A namespace cannot reach the machine's
  loopback, so the test starts a Redis of its own listening on loopback (for
  the API and the test) and on both veth gateways (for the workers), and the
  workers reach PostgreSQL through its Unix socket (namespaces do not isolate
  filesystem sockets).
- groups: where namespaces are refused (a container without CAP_SYS_ADMIN,
  not root, or ENMS_TEST_NO_NETNS=1), two groups of workers on this machine
  with distinct host identities (ENMS_WORKER_HOST), against the harness's
  Redis and PostgreSQL. ENMS_TEST_REQUIRE_NETNS=1 turns that fallback into a
  failure, for a machine known to allow namespaces.

Either way each host runs two workers with default ids (`<host>-<pid>`) and
the API runs on the machine itself. Host A starts first and holds the
housekeeping lock, so killing it (kill -9, while it runs jobs) also kills the
process that would recover them: host B must take the lock over, re-queue A's
jobs and finish everything, each job completed exactly once."""
import os
import signal
import subprocess
import time

import psycopg2
import pytest
import redis as redis_lib

from conftest import Proc, check_logs, free_port, pg_query
from netns import NetnsHosts, NetnsUnavailable
from pipeline import add_machine, pipeline_env, redis_client, start_api, trigger

HOSTS = ("host-a", "host-b")
WORKERS_PER_HOST = 2
FIRST_BATCH = 24          # queued before the kill
SECOND_BATCH = 6          # queued after it: only host B is left to take them
PROBE = {"steps": 8, "step_ms": 100}  # about 0.8 s a job
DEADLINE_S = 60           # hang guard, not a timing assertion


def wait_for(predicate, what, timeout=DEADLINE_S, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"{what}: not within {timeout}s")


def socket_dsn(dsn):
    """The same database through the server's Unix socket, as a libpq
    keyword DSN (the socket folder and port are asked from the server)."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_setting('unix_socket_directories'), "
                    "current_setting('port'), current_database(), current_user")
        dirs, port, db, user = cur.fetchone()
    conn.close()
    folder = dirs.split(",")[0].strip()
    assert folder, "PostgreSQL has no Unix socket: a namespace could not reach it"
    return f"host={folder} port={port} dbname={db} user={user}"


class Cluster:
    """The stack under test: API, Redis prefix, workers per host."""

    def __init__(self, mode, dsn, env, r):
        self.mode, self.dsn, self.env, self.r = mode, dsn, env, r
        self.p = env["ENMS_REDIS_PREFIX"]
        self.workers = {h: [] for h in HOSTS}   # host -> [Proc]
        self.addr = {}                          # host -> its address (netns mode)
        self.api = None

    def worker_ids(self, host):
        return [f"{host}-{w.proc.pid}" for w in self.workers[host]]


@pytest.fixture
def cluster(migrated_db, redis_url, spawn, bin_dir, tmp_path, record_testsuite_property,
            capsys):
    """Two hosts of two workers each, one API, one Redis. Tears everything
    down in reverse order, the namespaces last, whatever happened."""
    cleanups = []
    procs = []
    c = None
    try:
        hosts = NetnsHosts(["a", "b"])
        try:
            ns_hosts = hosts.create()
            cleanups.append(hosts.close)
            mode, why = "netns", ", ".join(f"{h.netns} {h.addr}" for h in ns_hosts)
        except NetnsUnavailable as e:
            if os.environ.get("ENMS_TEST_REQUIRE_NETNS"):
                pytest.fail(f"network namespaces required but unavailable: {e}")
            ns_hosts, mode, why = None, "groups", str(e)
        record_testsuite_property("two_hosts_mode", mode)
        with capsys.disabled():
            print(f"\n[two-hosts] mode={mode} ({why})", flush=True)

        worker_env = {}
        if ns_hosts:
            port = free_port()
            gateways = [h.gateway for h in ns_hosts]
            redis_log = open(tmp_path / "redis.log", "wb")
            server = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", *gateways,
                 "--protected-mode", "no", "--save", "", "--appendonly", "no",
                 "--dir", str(tmp_path)],
                stdout=redis_log, stderr=subprocess.STDOUT)

            def stop_redis():
                server.terminate()
                server.wait(timeout=10)
                redis_log.close()
            cleanups.append(stop_redis)
            api_redis = f"redis://127.0.0.1:{port}/0"
            probe = redis_lib.Redis(host="127.0.0.1", port=port)
            wait_for(lambda: _pings(probe), "own redis-server answers", timeout=10)
            pg_dsn = socket_dsn(migrated_db)
            for name, h in zip(HOSTS, ns_hosts):
                worker_env[name] = ({"ENMS_REDIS_URL": f"redis://{h.gateway}:{port}/0",
                                     "ENMS_PG_DSN": pg_dsn}, h.exec_prefix(), h.addr)
        else:
            api_redis = redis_url
            for name in HOSTS:
                worker_env[name] = ({}, [], None)

        machines = [add_machine(migrated_db) for _ in range(FIRST_BATCH + SECOND_BATCH)]
        env = pipeline_env(migrated_db, api_redis)
        r = redis_client(api_redis)
        c = Cluster(mode, migrated_db, env, r)
        c.machines = machines

        def say(line):
            with capsys.disabled():
                print(f"[two-hosts] mode={mode}: {line}", flush=True)
        c.say = say
        c.api = start_api(spawn, env)
        for name in HOSTS:
            extra, prefix, addr = worker_env[name]
            c.addr[name] = addr
            for i in range(WORKERS_PER_HOST):
                # No ENMS_WORKER_ID: the default id <host>-<pid> is under test.
                wenv = dict(os.environ)
                wenv.update(env)
                wenv.update(extra)
                wenv.update(ENMS_WORKER_HOST=name, ENMS_LOG_LEVEL="info")
                wenv.pop("ENMS_WORKER_ID", None)
                proc = Proc([*prefix, os.path.join(bin_dir, "enms-worker")],
                            wenv, str(tmp_path / f"worker-{name}-{i}.log"))
                procs.append(proc)
                c.workers[name].append(proc)
            if name == "host-a":
                # Host A starts first and takes the housekeeping lock, so its
                # death also takes down the process that recovers lost jobs.
                wait_for(lambda: host_of(r.get(f"{c.p}:lock:housekeeping")) == "host-a",
                         "host A holds the housekeeping lock", timeout=20)
        yield c
    finally:
        # Workers and the API before the Redis they talk to, namespaces last.
        for proc in procs + ([c.api] if c and c.api else []):
            proc.stop()

        def forget_keys():
            for key in c.r.scan_iter(f"{c.p}:*"):
                c.r.delete(key)
        def worker_logs():
            # The harness's log checks (JSON lines, no secrets), as spawn()
            # runs them for its processes; killed workers' logs included.
            check_logs(procs)
        errors = []
        for fn in [worker_logs] + ([forget_keys] if c else []) + list(reversed(cleanups)):
            try:
                fn()
            except Exception as e:  # every cleanup runs; the first failure is reported
                errors.append(e)
        if errors:
            raise errors[0]


def _pings(client):
    try:
        return client.ping()
    except redis_lib.ConnectionError:
        return False


def jobs_by_status(dsn, ids):
    rows = pg_query(dsn, "SELECT id::text, training_status, attempts, worker_id, "
                    "training_start > now() - interval '300 milliseconds' "
                    "FROM model_training_history WHERE id = ANY(%s::uuid[])", (ids,))
    return {i: {"status": s, "attempts": a, "worker": w, "just_started": j}
            for i, s, a, w, j in rows}


def host_of(worker_id):
    for h in HOSTS:
        if worker_id and worker_id.startswith(h + "-"):
            return h
    return None


def push(c, machines):
    ids = []
    for m in machines:
        resp = trigger(c.api.base, machine_id=m, params=PROBE)
        assert resp.status_code == 202, resp.text
        ids.append(resp.json()["training_job_id"])
    return ids


def client_ips(r):
    return [cl["addr"].rsplit(":", 1)[0] for cl in r.client_list()]


def test_two_hosts_share_the_queue_and_one_host_dying_loses_nothing(cluster):
    c = cluster

    def logs():
        return "\n".join(f"--- {w.log_path}\n{w.output()[-1500:]}"
                         for ws in c.workers.values() for w in ws)

    # Every worker registered under its default id and reports its host.
    all_ids = {h: c.worker_ids(h) for h in HOSTS}
    wait_for(lambda: c.r.smembers(f"{c.p}:workers") >= set(sum(all_ids.values(), [])),
             "all four workers registered", timeout=20)
    for h in HOSTS:
        for w, wid in zip(c.workers[h], all_ids[h]):
            info = c.r.hgetall(f"{c.p}:worker:{wid}")
            assert info["host"] == h and info["pid"] == str(w.proc.pid), (c.mode, wid, info)

    if c.mode == "netns":
        # The workers really are elsewhere: Redis sees them from their own
        # namespace addresses (main + housekeeping connection per worker).
        def by_addr():
            ips = client_ips(c.r)
            return all(ips.count(c.addr[h]) >= 2 * WORKERS_PER_HOST for h in HOSTS) and ips
        ips = wait_for(by_addr, "each host's workers connected from its address", timeout=10)
        assert set(ips) <= {"127.0.0.1", c.addr["host-a"], c.addr["host-b"]}, ips

    first = push(c, c.machines[:FIRST_BATCH])

    # Both hosts have finished jobs, and host A has just started one.
    def ready():
        rows = jobs_by_status(c.dsn, first)
        done = {h: sum(1 for j in rows.values()
                       if j["status"] == "completed" and host_of(j["worker"]) == h)
                for h in HOSTS}
        a_running = [j for j in rows.values()
                     if j["status"] == "running" and host_of(j["worker"]) == "host-a"
                     and j["just_started"]]
        return min(done.values()) >= 2 * WORKERS_PER_HOST and a_running
    wait_for(ready, "both hosts finished jobs and host A holds a fresh one", step=0.02)

    lock = f"{c.p}:lock:housekeeping"
    assert c.r.get(lock) in all_ids["host-a"], c.r.get(lock)
    for w in c.workers["host-a"]:
        os.kill(w.proc.pid, signal.SIGKILL)
    for w in c.workers["host-a"]:
        w.proc.wait(timeout=5)
        assert w.proc.returncode == -signal.SIGKILL
    before = jobs_by_status(c.dsn, first)
    held = [i for i, j in before.items()
            if j["status"] == "running" and host_of(j["worker"]) == "host-a"]
    done_by_a = {i for i, j in before.items()
                 if j["status"] == "completed" and host_of(j["worker"]) == "host-a"}
    assert held, f"host A held no running job at the kill: {before}"
    assert any(j["status"] == "pending" for j in before.values()), \
        "every job was already taken before the kill: nothing left to show"

    if c.mode == "netns":
        wait_for(lambda: c.addr["host-a"] not in client_ips(c.r),
                 "host A's connections gone from Redis", timeout=10)

    second = push(c, c.machines[FIRST_BATCH:])
    ids = first + second

    def all_final():
        rows = jobs_by_status(c.dsn, ids)
        return all(j["status"] in ("completed", "failed", "cancelled")
                   for j in rows.values()) and rows
    rows = wait_for(all_final, "every job final after host A died", step=0.1)

    assert {i: j["status"] for i, j in rows.items() if j["status"] != "completed"} == {}, logs()
    completions = dict(pg_query(
        c.dsn, "SELECT job_id::text, count(*) FROM job_events WHERE to_status = 'completed' "
        "AND job_id = ANY(%s::uuid[]) GROUP BY job_id", (ids,)))
    assert {i: completions.get(i, 0) for i in ids if completions.get(i, 0) != 1} == {}
    # Host A finished nothing after it died; everything else is host B's.
    for i, j in rows.items():
        if i in done_by_a:
            assert host_of(j["worker"]) == "host-a", (i, j)
        else:
            assert j["worker"] in all_ids["host-b"], (i, j, c.mode)
    # The jobs A held were taken back by housekeeping and run again.
    for i in held:
        assert rows[i]["attempts"] >= 2, (i, rows[i])
        moves = pg_query(c.dsn, "SELECT from_status, to_status, worker_id FROM job_events "
                         "WHERE job_id = %s ORDER BY id", (i,))
        assert ("running", "pending") in [(f, t) for f, t, _ in moves], moves

    assert c.r.get(lock) in all_ids["host-b"], "housekeeping did not move to host B"
    per_host = {h: sum(1 for j in rows.values() if host_of(j["worker"]) == h) for h in HOSTS}
    c.say(f"{len(ids)} jobs completed once each; by host: {per_host}; host A held "
          f"{len(held)} at the kill, finished by host B at attempt "
          f"{sorted(rows[i]['attempts'] for i in held)}; housekeeping lock moved from "
          f"host A to host B")

    # Nothing of host A is left in Redis: hashes expired, lists cleaned.
    def a_gone():
        keys = [k for wid in all_ids["host-a"]
                for k in (f"{c.p}:worker:{wid}", f"{c.p}:processing:{wid}")]
        return not any(c.r.exists(k) for k in keys) and \
            not (c.r.smembers(f"{c.p}:workers") & set(all_ids["host-a"]))
    wait_for(a_gone, "host A's registry entries and processing lists cleaned up", timeout=20)

    # Host B stops cleanly (exit 0, no sanitizer report).
    for w in c.workers["host-b"]:
        rc = w.stop()
        out = w.output()
        assert rc == 0 and "Sanitizer" not in out, f"{c.mode}: exit {rc}\n{out[-3000:]}"
